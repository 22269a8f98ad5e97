"""How large each task's inline inputs are once KFP resolves them (pure).

KFP hands a container its whole executor input as ONE command-line argument
(`--executor_input {{$}}`), and Linux refuses to start a process with an argument longer than
MAX_ARG_STRLEN (32 pages = 128 KiB): the pod fails with "argument list too long". Artifacts
travel as URIs, parameters inline. This estimates, from the compiled spec, the JSON size of
each task's parameter values: constants and pipeline-input defaults as written; outputs of
other tasks (unknown at compile time) count as OUTPUT_PARAMETER_GUESS bytes.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

ARG_LIMIT_BYTES = 128 * 1024  # MAX_ARG_STRLEN on Linux
HEADROOM_BYTES = 8 * 1024  # artifact URIs, output paths and the executor input's own keys
OUTPUT_PARAMETER_GUESS = 4 * 1024  # e.g. validate's admission: a site spec and its policy


def inline_input_bytes(pipeline_spec: Mapping[str, Any]) -> dict[str, int]:
    """{task name: estimated bytes of its parameter values in the executor input}."""
    root = pipeline_spec["root"]
    defaults = {
        name: body.get("defaultValue")
        for name, body in root.get("inputDefinitions", {}).get("parameters", {}).items()
    }
    sizes = {}
    for task, body in root["dag"]["tasks"].items():
        values: dict[str, Any] = {}
        guessed = 0
        for name, ref in body.get("inputs", {}).get("parameters", {}).items():
            if "runtimeValue" in ref:
                values[name] = ref["runtimeValue"].get("constant")
            elif "componentInputParameter" in ref:
                values[name] = defaults.get(ref["componentInputParameter"])
            else:
                guessed += OUTPUT_PARAMETER_GUESS
        sizes[task] = len(json.dumps(values)) + guessed
    return sizes


def over_limit(sizes: Mapping[str, int]) -> dict[str, int]:
    """The entries of `sizes` ({task: bytes}) that would not fit in one argument."""
    limit = ARG_LIMIT_BYTES - HEADROOM_BYTES
    return {t: n for t, n in sizes.items() if n > limit}


def oversized_tasks(pipeline_spec: Mapping[str, Any]) -> dict[str, int]:
    """Tasks whose executor input would not fit in one argument: {task: estimated bytes}."""
    return over_limit(inline_input_bytes(pipeline_spec))
