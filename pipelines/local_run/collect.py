"""Read what a kfp.local run left in its pipeline root (task folders, artifact folders).

kfp.local writes `<pipeline_root>/<pipeline>-<timestamp>/<task>/<output>/...`; a fedpipe
artifact is a folder holding `meta.json` and payload files (CONTRACT.md).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from components.common.global_model import ENCRYPTED_MARKER
from pipelines.local_run.progress import TaskInfo

OUTPUT_DOCS = ("meta.json", "ref.json", "round.json", "metrics.json", "summary.json", "global.json")


def latest_pipeline_dir(pipeline_root: Path, pipeline_name: str) -> Path | None:
    """The newest `<pipeline_name>-<timestamp>` folder under `pipeline_root`, if any."""
    if not pipeline_root.is_dir():
        return None
    found = sorted(
        (p for p in pipeline_root.iterdir() if p.is_dir() and p.name.startswith(pipeline_name)),
        key=lambda p: p.name,
    )
    return found[-1] if found else None


def task_documents(task_dir: Path) -> dict[str, dict[str, Any]]:
    """{file name: parsed JSON} of the known output documents in a task's output folders."""
    docs: dict[str, dict[str, Any]] = {}
    if not task_dir.is_dir():
        return docs
    for output in sorted(p for p in task_dir.iterdir() if p.is_dir()):
        for name in OUTPUT_DOCS:
            path = output / name
            if path.is_file() and name not in docs:
                try:
                    docs[name] = json.loads(path.read_text())
                except ValueError:
                    continue
    return docs


@dataclass
class RunArtifacts:
    """Where the interesting outputs of a finished local run are (paths of artifact folders)."""

    round_reports: dict[int, Path] = field(default_factory=dict)
    evaluations: dict[int, dict[str, Path]] = field(default_factory=dict)
    validations: dict[str, Path] = field(default_factory=dict)
    global_models: dict[int, Path] = field(default_factory=dict)  # round -> aggregate output
    initial_model: Path | None = None
    report_dir: Path | None = None


def _output_with(task_dir: Path, filename: str) -> Path | None:
    if not task_dir.is_dir():
        return None
    for output in sorted(p for p in task_dir.iterdir() if p.is_dir()):
        if (output / filename).is_file():
            return output
    return None


def collect(pipeline_dir: Path, tasks: dict[str, TaskInfo]) -> RunArtifacts:
    """Locate round reports, evaluations, validations and global models by task."""
    out = RunArtifacts()
    for local_name, info in tasks.items():
        task_dir = pipeline_dir / local_name
        if info.stage == "aggregate" and info.round_index:
            report = _output_with(task_dir, "round.json")
            # protection he: an encrypted global model (one ciphertext, no model.npz)
            model = _output_with(task_dir, "model.npz") or _output_with(task_dir, ENCRYPTED_MARKER)
            if report:
                out.round_reports[info.round_index] = report
            if model:
                out.global_models[info.round_index] = model
        elif info.stage == "evaluate" and info.round_index and info.site_id:
            found = _output_with(task_dir, "metrics.json")
            if found:
                out.evaluations.setdefault(info.round_index, {})[info.site_id] = found
        elif info.stage == "validate" and info.site_id:
            found = _output_with(task_dir, "summary.json")
            if found:
                out.validations[info.site_id] = found
        elif info.stage == "initialize":
            out.initial_model = _output_with(task_dir, "model.npz")
        elif info.stage == "report" and task_dir.is_dir():
            out.report_dir = task_dir
    return out
