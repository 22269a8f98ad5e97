"""The run object of `fedpipe run --local`: options, result, errors, pipeline arguments.

Pure: nothing here touches files, processes or servers.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pipelines.config.loader import Federation

RUN_ID_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")


class RunError(Exception):
    """A local run that cannot start or that failed; the message says what and where."""


@dataclass
class RunOptions:
    """Options of `fedpipe run --local` (see pipelines/commands/run.py for the flags)."""

    rounds: int = 5
    dataset: str = "breast_cancer"
    split: str = "iid"
    alpha: float = 0.5
    dp: bool = True
    run_id: str | None = None
    sites_dir: Path = Path("sites")
    policies_dir: Path = Path("policies")
    runs_dir: Path = Path("runs")
    seed: int = 0
    baseline: bool = True
    workers: int = field(default_factory=lambda: len(os.sched_getaffinity(0)))  # tasks at once
    isolation: str = "warm"  # "warm" (forks of a warm worker) or "process" (kfp.local's way)
    task_timeout_s: float | None = 3600.0  # a task running longer is killed and fails
    overrides: dict[str, Any] = field(default_factory=dict)  # extra pipeline parameters
    task_env: dict[str, str] = field(default_factory=dict)  # extra env of every task (bench)


@dataclass
class RunResult:
    """Where a finished run's outputs are, plus its summary and timings."""

    run_id: str
    run_dir: Path
    summary: dict[str, Any]
    timings: dict[str, float]
    task_seconds: dict[str, float]
    task_body_seconds: dict[str, float | None] = field(default_factory=dict)


def default_run_id(now: datetime | None = None) -> str:
    """`local-YYYYMMDD-HHMMSS` (UTC)."""
    return (now or datetime.now(UTC)).strftime("local-%Y%m%d-%H%M%S")


def check_run_id(run_id: str) -> str:
    if not RUN_ID_RE.fullmatch(run_id):
        raise RunError(f"--run-id {run_id!r}: use 1-63 characters a-z, 0-9 and '-'")
    return run_id


def check_dp_off_allowed(federation: Federation) -> None:
    """--no-dp only when every site's governing policy sets dp.allow_dp_off."""
    refusing = [
        f"{sid} (policy {federation.policy_of(sid).id})"
        for sid in federation.sites
        if not federation.policy_of(sid).dp.allow_dp_off
    ]
    if refusing:
        raise RunError(
            "--no-dp refused: dp.allow_dp_off is false in the policies of " + ", ".join(refusing)
        )


def pipeline_parameters(spec: dict[str, Any]) -> dict[str, Any]:
    """{name: default} of the compiled pipeline's parameters (None when no default)."""
    params = ((spec.get("root") or {}).get("inputDefinitions") or {}).get("parameters") or {}
    return {name: p.get("defaultValue") for name, p in params.items()}


def pipeline_arguments(
    params: dict[str, Any], run_id: str, options: RunOptions
) -> tuple[dict[str, Any], list[str]]:
    """Arguments for the pipeline (only names it declares) and the names it did not know.

    The dataset's training recipe (`pipelines.local_run.recipes`) comes first; overrides win."""
    from pipelines.local_run.recipes import recipe_arguments

    wanted: dict[str, Any] = {"run_id": run_id, "dp_enabled": options.dp, "seed": options.seed}
    wanted["dataset"] = options.dataset
    wanted.update(recipe_arguments(options.dataset, params, options.overrides))
    wanted.update(options.overrides)
    args = {k: v for k, v in wanted.items() if k in params}
    unknown = sorted(k for k in options.overrides if k not in params)
    return args, unknown


def compiled_setting(settings: dict[str, Any], name: str) -> Any:
    """`settings[name]` (compiled default or argument); RunError when the pipeline has none."""
    value = settings.get(name)
    if value is None:
        raise RunError(f"the compiled pipeline has no value for parameter {name!r}")
    return value
