"""Where a local run's pipeline time goes: time per stage and the share outside task bodies.

A task's *body* is its executor function as KFP's executor logs it: from `Got
executor_input` to `Wrote executor output file` / `Did not write output file` (timestamps of
the `[KFP Executor ...]` lines in the task's log). Everything else of a task's wall time —
interpreter start, imports before the executor runs, KFP's own work, scheduling — is
*outside*. Imports an executor does lazily inside its function count as body. Pure.
"""

from __future__ import annotations

import re
import statistics
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime

from pipelines.task_names import STAGES

_KFP_LINE = re.compile(
    r"^\[KFP Executor (?P<ts>\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) \w+\]: (?P<msg>.*)"
)
_BEGIN = "Got executor_input"
_END = ("Wrote executor output file", "Did not write output file")


def body_seconds(log_lines: Iterable[str]) -> float | None:
    """Seconds of the executor function from a task's log (None when the log lacks the lines)."""
    begin = end = None
    for line in log_lines:
        match = _KFP_LINE.match(line)
        if not match:
            continue
        stamp = datetime.strptime(match.group("ts"), "%Y-%m-%d %H:%M:%S,%f")
        if match.group("msg").startswith(_BEGIN):
            begin = stamp
        elif match.group("msg").startswith(_END) and begin is not None:
            end = stamp
    if begin is None or end is None:
        return None
    return max(0.0, (end - begin).total_seconds())


@dataclass(frozen=True)
class StageTime:
    """One stage's tasks: how many, median and total wall seconds, total body seconds."""

    stage: str
    tasks: int
    median_s: float
    total_s: float
    body_s: float

    @property
    def outside_share(self) -> float:
        return 1.0 - self.body_s / self.total_s if self.total_s > 0 else 0.0


def stage_times(
    task_seconds: Mapping[str, float],
    task_body: Mapping[str, float | None],
    stages: Mapping[str, str],
) -> list[StageTime]:
    """Rows in pipeline order; a task without body timing counts as all outside."""
    per: dict[str, list[tuple[float, float]]] = {}
    for task, seconds in task_seconds.items():
        body = task_body.get(task)
        per.setdefault(stages.get(task, task), []).append((seconds, min(seconds, body or 0.0)))
    order = {s: i for i, s in enumerate(STAGES)}
    return [
        StageTime(
            stage,
            len(rows),
            statistics.median(s for s, _ in rows),
            sum(s for s, _ in rows),
            sum(b for _, b in rows),
        )
        for stage, rows in sorted(per.items(), key=lambda kv: (order.get(kv[0], 99), kv[0]))
    ]


def format_stage_times(
    rows: list[StageTime],
    pipeline_s: float,
    isolation: str,
    warm: Mapping[str, object] | None = None,
) -> list[str]:
    """The table `fedpipe run` prints at the end; `warm`: the warm worker's start-up event
    (`seconds` of imports, `waited` by the pipeline phase for them)."""
    lines = [
        f"time per stage ({isolation} isolation; task seconds overlap when tasks run at once):"
    ]
    lines.append(f"  {'stage':<11}{'tasks':>6}{'median s':>10}{'total s':>10}{'outside':>9}")
    for r in rows:
        lines.append(
            f"  {r.stage:<11}{r.tasks:>6}{r.median_s:>10.2f}{r.total_s:>10.1f}"
            f"{r.outside_share:>9.0%}"
        )
    total = sum(r.total_s for r in rows)
    body = sum(r.body_s for r in rows)
    share = 1.0 - body / total if total > 0 else 0.0
    lines.append(
        f"  {'all':<11}{sum(r.tasks for r in rows):>6}{'':>10}{total:>10.1f}{share:>9.0%}"
        f"   pipeline phase {pipeline_s:.1f} s"
    )
    if warm:
        lines.append(
            f"  warm worker: imports {float(str(warm.get('seconds', 0))):.1f} s, of which the "
            f"pipeline phase waited {float(str(warm.get('waited', 0))):.1f} s"
        )
    return lines
