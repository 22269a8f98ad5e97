"""Compile a federation into residency-checked, versioned KFP YAML plus its residency report.

Order: check the policies' update protection (`pipelines.residency.protection`) → build the DAG → extract the artifact flow graph → check it against the policies (a
violation raises before anything is written) → compile to YAML → version → reports.

Version: `sha256:<hex>` = sha256 over the compiled YAML with its `sdkVersion` line removed
(and the version itself still a placeholder) and the federation's config digest (all sites
and policies). It is written into `pipelineInfo.description` as `digest: sha256:<hex>`
(what `pipelines.kfp_ops.digest` reads) and into both reports. Same sites, policies, rounds
and code give byte-identical output.
"""

from __future__ import annotations

import difflib
import hashlib
import os
import re
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from components.domain.federation import Federation
from pipelines.dag import PIPELINE_NAME, build_pipeline, user_defaults
from pipelines.flows import flow_edges
from pipelines.kfp_speed import gc_paused
from pipelines.placement.registry import pipeline_image
from pipelines.residency import (
    FlowEdge,
    ResidencyDecision,
    check_flows,
    enforce,
    render_report_json,
    render_report_markdown,
)
from pipelines.residency.dp_mode import check_dp_mode
from pipelines.residency.protection import check_protection
from pipelines.task_inputs import inline_input_bytes
from pipelines.yaml_writer import dump_pipeline, pipeline_documents

PIPELINE_FILE = "federated-training.yaml"
REPORT_JSON_FILE = "residency-report.json"
REPORT_MD_FILE = "residency-report.md"
OUTPUT_FILES = (PIPELINE_FILE, REPORT_JSON_FILE, REPORT_MD_FILE)

VERSION_PLACEHOLDER = "sha256:" + "0" * 64
_SDK_VERSION_LINE = re.compile(r"^sdkVersion: .*\n", re.MULTILINE)
_MAX_LISTED_SITES = 10


@dataclass(frozen=True)
class Compiled:
    """A checked compile: the YAML and reports as text, the version and the flow decisions."""

    version: str
    pipeline_yaml: str
    report_json: str
    report_markdown: str
    edges: tuple[FlowEdge, ...]
    decisions: tuple[ResidencyDecision, ...]
    inline_inputs: dict[str, int]  # task -> estimated bytes of inline inputs (task_inputs.py)

    def files(self) -> dict[str, str]:
        """{file name: text} of the three output files."""
        return {
            PIPELINE_FILE: self.pipeline_yaml,
            REPORT_JSON_FILE: self.report_json,
            REPORT_MD_FILE: self.report_markdown,
        }


def strip_sdk_version(yaml_text: str) -> str:
    """The YAML without its `sdkVersion: kfp-x.y.z` line (what goldens and digests compare)."""
    return _SDK_VERSION_LINE.sub("", yaml_text)


def pipeline_version(yaml_text: str, federation: Federation) -> str:
    """`sha256:<hex>` over the sdkVersion-stripped YAML and the sites + policies digest."""
    spec = hashlib.sha256(strip_sdk_version(yaml_text).encode("utf-8")).hexdigest()
    body = f"fedpipe pipeline version v1\nspec {spec}\nconfig {federation.digest()}\n"
    return "sha256:" + hashlib.sha256(body.encode("utf-8")).hexdigest()


def describe(federation: Federation, rounds: int, version: str) -> str:
    """The pipeline description shown in KFP (ends with `digest: <version>`)."""
    ids = list(federation.sites)
    listed = ", ".join(ids[:_MAX_LISTED_SITES]) + (", ..." if len(ids) > _MAX_LISTED_SITES else "")
    c = federation.coordinator
    return (
        f"Residency-checked federated training, {rounds} round{'s' if rounds != 1 else ''}, "
        f"{len(ids)} sites ({listed}), coordinator {c.id} ({c.provider} {c.region}, "
        f"{c.jurisdiction}). Compiled by fedpipe from sites/ and policies/. digest: {version}"
    )


def flow_graph(pipeline: Any) -> list[FlowEdge]:
    """The FlowEdges of a built `@dsl.pipeline` (read from its pipeline and platform specs)."""
    return flow_edges(*pipeline_documents(pipeline))


def compile_federation(
    federation: Federation, rounds: int = 1, image: str | None = None
) -> Compiled:
    """Build, check and compile; ResidencyViolationError (nothing produced) on any violation.

    `image`: the container image of every task (a site's `image_registry` still rewrites its
    registry part); None keeps the components' `FEDPIPE_IMAGE`. It is in the YAML, so it is part
    of the version.
    """
    with gc_paused(), pipeline_image(image):
        return _compile(federation, rounds)


def _compile(federation: Federation, rounds: int) -> Compiled:
    defaults = user_defaults(federation)
    check_dp_mode(federation)
    check_protection(
        federation,
        defaults["rule"],
        defaults["server_optimizer"],
        defaults["server_learning_rate"],
    )
    pipeline = build_pipeline(federation, rounds, describe(federation, rounds, VERSION_PLACEHOLDER))
    spec, platform = pipeline_documents(pipeline)
    edges = flow_edges(spec, platform)
    decisions = check_flows(edges, federation)
    enforce(decisions)
    raw = dump_pipeline(spec, platform, pipeline.description)
    if VERSION_PLACEHOLDER not in raw:
        raise RuntimeError("compiled YAML lost the version placeholder of its description")
    version = pipeline_version(raw, federation)
    text = raw.replace(VERSION_PLACEHOLDER, version)
    extra = {
        "pipeline": PIPELINE_NAME,
        "rounds": rounds,
        "sites": len(federation.sites),
        "config_digest": federation.digest(),
    }
    return Compiled(
        version=version,
        pipeline_yaml=text,
        report_json=render_report_json(decisions, version, federation, extra),
        report_markdown=render_report_markdown(decisions, version, federation, extra),
        edges=tuple(edges),
        decisions=tuple(decisions),
        inline_inputs=inline_input_bytes(spec),
    )


def write_outputs(files: dict[str, str], out_dir: str | Path) -> list[Path]:
    """Write `files` into `out_dir` all-or-nothing: staged in a sibling temp dir, then moved.

    A missing `out_dir` is created by renaming the staging folder; an existing one gets each
    file replaced (`os.replace`). Returns the written paths.
    """
    out = Path(out_dir)
    parent = out.resolve().parent
    parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}-staging-", dir=parent))
    try:
        for name, text in files.items():
            Path(staging, name).write_text(text, encoding="utf-8")
        if not out.exists():
            os.replace(staging, out)
        else:
            for name in files:
                os.replace(staging / name, out / name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return [out / name for name in files]


def unified_diff(golden: str, fresh: str, golden_name: str, context: int = 2) -> Sequence[str]:
    """Unified diff lines between two YAML texts (sdkVersion stripped from both)."""
    return list(
        difflib.unified_diff(
            strip_sdk_version(golden).splitlines(),
            strip_sdk_version(fresh).splitlines(),
            fromfile=golden_name,
            tofile="fresh compile",
            lineterm="",
            n=context,
        )
    )
