"""Readable progress from kfp.local's log stream (pure: lines in, events and text out).

kfp.local prints, per task, `Executing task 'NAME'`, the task's own output (indented) and
`Task 'NAME' finished with status SUCCESS|FAILURE`, where NAME is the component name without
its `comp-` prefix. `task_map` turns the compiled pipeline spec into NAME -> (stage, site,
round); `LogParser` turns lines into start/finish events carrying the task's log lines;
`describe` summarises a finished task from its output documents.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipelines.task_names import parse_task_name

EVENT_PREFIX = "FEDPIPE_EVENT "
FAILURE_PREFIX = "fedpipe: task "  # the scheduler's last line in a failed task's log
_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_START = re.compile(r"Executing task '(?P<task>[^']+)'")
_END = re.compile(r"Task '(?P<task>[^']+)' finished with status (?P<status>SUCCESS|FAILURE)")
_PIPE_END = re.compile(r"Pipeline '(?P<name>[^']+)' finished with status (?P<status>\w+)")


def strip_ansi(text: str) -> str:
    """`text` without terminal colour codes."""
    return _ANSI.sub("", text)


@dataclass(frozen=True)
class TaskInfo:
    """What a kfp.local task is: its pipeline task name, stage, site and round (if any)."""

    name: str
    stage: str
    site_id: str | None
    round_index: int | None


COORDINATOR_STAGES = frozenset(
    {"initialize", "scaling", "roster", "relay", "request", "aggregate", "report"}
)
# Stages that run once before the rounds (the "setup" lines).
SETUP_STAGES = frozenset(
    {"initialize", "validate", "stats", "scaling", "roster", "shares", "relay"}
)


def _constant(task: Mapping[str, Any], name: str) -> Any:
    param = ((task.get("inputs") or {}).get("parameters") or {}).get(name) or {}
    return (param.get("runtimeValue") or {}).get("constant")


def task_map(pipeline_spec: Mapping[str, Any]) -> dict[str, TaskInfo]:
    """{kfp.local task folder name: TaskInfo} from a compiled pipeline spec (YAML as dict).

    Stage, site and round come from the pipeline task name (`pipelines.task_names`, the rule
    the DAG names tasks with); a task's `site_id`/`round_index` constants win when present."""
    tasks = ((pipeline_spec.get("root") or {}).get("dag") or {}).get("tasks") or {}
    out: dict[str, TaskInfo] = {}
    for task_name, task in tasks.items():
        component = (task.get("componentRef") or {}).get("name", "")
        local_name = component.removeprefix("comp-")
        display = (task.get("taskInfo") or {}).get("name") or task_name
        parsed = parse_task_name(task_name) or parse_task_name(display)
        site = _constant(task, "site_id")
        rnd = _constant(task, "round_index")
        stage = parsed.stage if parsed else local_name
        if site is None:
            site = parsed.site_id if parsed else None
        if site is None and stage in COORDINATOR_STAGES:
            site = "coordinator"
        if rnd is not None:
            round_index: int | None = int(rnd)
        else:
            round_index = parsed.round_index if parsed else None
        out[local_name] = TaskInfo(display, stage, site, round_index)
    return out


@dataclass
class Event:
    """`kind` is "start", "finish" or "pipeline"; `log` holds a finished task's own lines."""

    kind: str
    task: str
    status: str = ""
    log: list[str] = field(default_factory=list)
    detail: dict[str, Any] = field(default_factory=dict)  # the event's own fields


class LogParser:
    """Feed kfp.local stdout lines; returns events as tasks start and finish.

    Understands kfp.local's own log format (one task at a time) and the
    `FEDPIPE_EVENT {json}` lines of the parallel scheduler (whose finish events name the
    task's log file; its lines are read from there).
    """

    def __init__(self) -> None:
        self._current: str | None = None
        self._lines: list[str] = []

    def feed(self, raw_line: str) -> list[Event]:
        line = strip_ansi(raw_line.rstrip("\n"))
        if line.startswith(EVENT_PREFIX):
            return [_structured(line[len(EVENT_PREFIX) :])]
        if m := _START.search(line):
            self._current, self._lines = m.group("task"), []
            return [Event("start", m.group("task"))]
        if m := _END.search(line):
            log, self._current, self._lines = self._lines, None, []
            return [Event("finish", m.group("task"), m.group("status"), log)]
        if m := _PIPE_END.search(line):
            return [Event("pipeline", m.group("name"), m.group("status"))]
        if self._current is not None:
            self._lines.append(line[4:] if line.startswith("    ") else line)
        return []


def _structured(text: str) -> Event:
    body = json.loads(text)
    kind = str(body.get("kind"))
    log: list[str] = []
    if kind == "finish" and body.get("log"):
        with contextlib.suppress(OSError):
            log = Path(body["log"]).read_text(errors="replace").splitlines()
    if kind == "error":
        kind, body["status"], log = "finish", "FAILURE", [str(body.get("message"))]
    return Event(kind, str(body.get("task")), str(body.get("status") or ""), log, body)


def error_lines(log: list[str], limit: int = 12) -> list[str]:
    """The most telling lines of a failed task's log: from the last traceback, else the tail."""
    body = [x for x in log if x.strip()]
    starts = [i for i, x in enumerate(body) if x.startswith("Traceback (most recent call last)")]
    if starts:
        # the scheduler's own last line ("fedpipe: task ... exited with code 1") adds nothing
        tail = [x for x in body[starts[-1] :] if not x.startswith(FAILURE_PREFIX)]
        # the exception line(s) at the end matter most
        return tail[-limit:]
    return body[-limit:]


def _pct(value: Any) -> str:
    return "–" if value is None else f"{100.0 * float(value):.1f}%"


def _eps(value: Any) -> str:
    return "–" if value is None else f"{float(value):.3f}"


def _reasons(mapping: Mapping[str, Any] | None) -> str:
    return ", ".join(f"{k} ({v})" for k, v in (mapping or {}).items()) or "none"


def describe(info: TaskInfo, docs: Mapping[str, Mapping[str, Any]]) -> str:
    """One-line outcome of a finished task from its output documents.

    docs: {file name: parsed JSON} found in the task's output folders, e.g. `meta.json`
    (train), `ref.json` (export), `round.json` (aggregate), `metrics.json` (evaluate),
    `summary.json` (validate, report).
    """
    stage = info.stage
    if stage == "validate" and "summary.json" in docs:
        s = docs["summary.json"]
        if s.get("passed"):
            rows = s.get("row_count")
            return "data passed its contract" + (f" ({rows} rows)" if rows is not None else "")
        return f"data FAILED its contract: {s.get('reason')} (site abstains)"
    if stage == "stats" and "ref.json" in docs:
        r = docs["ref.json"]
        if r.get("status") in ("released", "reused"):
            eps = r.get("epsilon")
            spent = (
                "no noise (DP off)"
                if not r.get("noise_multiplier")
                else (f"ε {_eps(eps)} RDP" if eps is not None else "released before, nothing spent")
            )
            return f"noised feature statistics in s3://{r.get('bucket')}/{r.get('key')} ({spent})"
        return f"ABSTAINED: {r.get('reason')}"
    if stage == "scaling" and "global.json" in docs:
        g = docs["global.json"]
        return (
            f"global mean/std of {len(g.get('names') or [])} inputs from "
            f"{len(g.get('sites') or [])} site(s); floored {len(g.get('floored') or [])}"
        )
    if stage in SECAGG_STAGES and "ref.json" in docs:
        return _secagg_line(stage, docs["ref.json"])
    if stage == "initialize" and "meta.json" in docs:
        m = docs["meta.json"]
        return f"global model v{m.get('version')} ({m.get('model_name')}, {m.get('dataset')})"
    if stage == "train" and "meta.json" in docs:
        m = docs["meta.json"]
        if m.get("status") == "abstained":
            return f"ABSTAINED: {m.get('reason')}"
        if m.get("status") == "resumed":
            return f"RESUMED, no budget spent: {m.get('reason')}"
        rows = m.get("num_examples")
        text = "trained" + (f" on {rows} rows" if rows is not None else "")
        if m.get("epsilon") is not None:
            text += (
                f", ε this round {_eps(m.get('epsilon'))} RDP / {_eps(m.get('epsilon_pld'))} PLD"
            )
        ledger = m.get("ledger") or {}
        total = ledger.get("epsilon", ledger.get("total_epsilon"))
        if total is not None:
            text += f", ledger total {_eps(total)}"
        if m.get("epsilon") is None and not (m.get("dp") or {}).get("enabled", True):
            text += " (DP off)"
        return text
    if stage == "train" and "ref.json" in docs:  # the model stayed in the site's bucket
        r = docs["ref.json"]
        return f"trained; model kept in s3://{r.get('bucket')}/{r.get('prefix')}"
    if stage == "export" and "ref.json" in docs:
        r = docs["ref.json"]
        if r.get("status") == "masked":
            return f"masked update (SecAgg+) written to s3://{r.get('bucket')}/{r.get('key')}"
        if r.get("status") == "exported":
            what = "encrypted update" if str(r.get("tensors_key")).endswith(".ckks") else "update"
            return f"signed {what} written to s3://{r.get('bucket')}/{r.get('key')}"
        return f"nothing exported: {r.get('reason')}"
    if stage == "aggregate" and "round.json" in docs:
        r = docs["round.json"]
        contributors = r.get("contributors") or []
        encrypted = str((r.get("notes") or {}).get("protection", "")).startswith("he:")
        return (
            f"{'encrypted ' if encrypted else ''}global model v{r.get('version')} from "
            f"{len(contributors)} site(s) "
            f"({r.get('rule')}{', ciphertexts added, sites decrypt' if encrypted else ''}); "
            f"abstained: {_reasons(r.get('abstained'))}; "
            f"rejected: {_reasons(r.get('rejected'))}"
        )
    if stage == "evaluate" and "metrics.json" in docs:
        m = docs["metrics.json"]
        if m.get("task") == "regression" and m.get("status") != "abstained":
            return (
                f"holdout R² {_num(m.get('r2'))}, MAE {_num(m.get('mae'))}, "
                f"RMSE {_num(m.get('rmse'))}"
            )
        loss = m.get("loss")
        loss_text = "–" if loss is None else f"{float(loss):.3f}"
        text = f"holdout accuracy {_pct(m.get('accuracy'))}, loss {loss_text}"
        mia = m.get("membership")
        if isinstance(mia, dict):
            worst = max(mia["loss_threshold"]["advantage"], mia["logistic"]["advantage"])
            text += f"; membership advantage {worst:.3f} (bound {mia['bound']:.3f})"
            text += " ABOVE THE BOUND" if mia.get("above_bound") else ""
        return text
    if stage == "report" and "summary.json" in docs:
        summary = docs["summary.json"]
        final = summary.get("final") or {}
        if summary.get("task") == "regression":
            return f"report rendered (final holdout R² {_num(final.get('r2'))})"
        return f"report rendered (final holdout accuracy {_pct(final.get('accuracy'))})"
    return "done"


SECAGG_STAGES = frozenset({"roster", "shares", "relay", "request", "answer"})


def _secagg_line(stage: str, r: Mapping[str, Any]) -> str:
    """The line of a SecAgg+ step from its `ref.json`."""
    status = r.get("status")
    if status == "abstained":
        return f"ABSTAINED: {r.get('reason')}"
    if stage == "roster":
        rosters = r.get("rosters") or {}
        first = next(iter(rosters.values()), {})
        return (
            f"signed rosters of {len(rosters)} round(s): {len(first.get('sites') or [])} "
            f"site(s), k = {first.get('neighbours')}, t = {first.get('threshold')}; "
            f"absent: {_reasons(r.get('absent'))}"
        )
    if stage == "shares":
        return f"sealed Shamir shares for the neighbours, rounds {sorted(r.get('shares') or {})}"
    if stage == "relay":
        return f"relayed {sum((r.get('shares') or {}).values())} sealed share(s)"
    if stage == "request":
        return (
            f"signed unmasking request: survivors {', '.join(r.get('survivors') or [])}; "
            f"dropped: {_reasons(r.get('dropped'))}"
        )
    return (
        f"answered: self-mask shares of {len(r.get('self_mask_of') or [])} site(s), "
        f"key shares of {len(r.get('mask_key_of') or [])} dropped site(s)"
    )


def _num(value: Any) -> str:
    return "–" if value is None else f"{float(value):.3f}"


def format_line(elapsed_s: float, info: TaskInfo, rounds: int, text: str, ok: bool = True) -> str:
    """`[  12.3s] round 1/5  train      hospital-berlin   <text>`."""
    where = f"round {info.round_index}/{rounds}" if info.round_index else "setup"
    if info.stage in SETUP_STAGES:
        where = "setup"
    elif info.stage == "report":
        where = "final"
    mark = "✓" if ok else "✗"
    return (
        f"[{elapsed_s:6.1f}s] {where:<11} {info.stage:<10} {info.site_id or '':<16} {mark} {text}"
    )
