"""Progress printing of a local run: kfp.local's stdout becomes one line per finished task.

`Progress` consumes the child's stdout (`progress.LogParser` events), writes each task's log
under `logs/tasks/`, prints a line per task (`progress.describe`; a train's privacy figures and
the line after each aggregate from the sites' ledgers, `LedgerView`), keeps per-task seconds,
and remembers the first failure; `failure_message` words it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipelines.local_run import collect as collect_mod
from pipelines.local_run.ledger_lines import eps_text, round_privacy, run_epsilon_line, train_text
from pipelines.local_run.progress import (
    SETUP_STAGES,
    LogParser,
    TaskInfo,
    describe,
    error_lines,
    format_line,
)
from pipelines.local_run.stage_times import body_seconds


@dataclass(frozen=True)
class LedgerView:
    """The member sites' privacy ledgers as the console reads them: `read(site_id)` returns
    the site's entries (I/O: the local object stores); `deltas` from each site's policy."""

    run_id: str
    site_ids: tuple[str, ...]
    deltas: dict[str, float]
    read: Callable[[str], list[Any]]


class Progress:
    """Turns kfp.local's stdout into one line per finished task (plus per-round headers).

    With `ledgers`, a train's line and the line after each aggregate say what the sites'
    ledgers hold (`pipelines.local_run.ledger_lines`), not what task outputs carried."""

    def __init__(
        self,
        tasks: dict[str, TaskInfo],
        rounds: int,
        pipeline_root: Path,
        pipeline_name: str,
        logs_dir: Path,
        emit: Callable[[str], None],
        status: Callable[[str], None] | None = None,
        ledgers: LedgerView | None = None,
    ) -> None:
        self.tasks = tasks
        self.ledgers = ledgers
        self.status = status
        self.rounds = rounds
        self.pipeline_root = pipeline_root
        self.pipeline_name = pipeline_name
        self.logs_dir = logs_dir
        self.emit = emit
        self.parser = LogParser()
        self.t0 = time.monotonic()
        self.started: dict[str, float] = {}
        self.seconds: dict[str, float] = {}
        self.warm: dict[str, object] | None = None  # the warm worker's start-up event
        self.body: dict[str, float | None] = {}  # executor function seconds (stage_times)
        self.failed: tuple[TaskInfo, list[str], str] | None = None
        self.current_round: int | None = None
        self.pipeline_status: str | None = None

    def info(self, name: str) -> TaskInfo:
        return self.tasks.get(name) or TaskInfo(name, name, None, None)

    def feed(self, line: str) -> None:
        for event in self.parser.feed(line):
            if event.kind == "start":
                self.started[event.task] = time.monotonic()
                info = self.info(event.task)
                if (
                    info.round_index
                    and info.stage not in SETUP_STAGES | {"report"}
                    and info.round_index != self.current_round
                ):
                    self.current_round = info.round_index
                    self.emit(f"── round {info.round_index}/{self.rounds} " + "─" * 50)
            elif event.kind == "finish":
                self._finished(event.task, event.status, event.log)
            elif event.kind == "warm":
                self.warm = event.detail
            elif event.kind == "pipeline":
                self.pipeline_status = event.status
            self._show_running()

    def running(self) -> list[str]:
        """'stage site rN' of the tasks started and not finished yet."""
        out = []
        for name in self.started:
            if name in self.seconds:
                continue
            info = self.info(name)
            where = f" r{info.round_index}" if info.round_index else ""
            out.append(f"{info.stage} {info.site_id or ''}{where}".replace("  ", " "))
        return out

    def _show_running(self) -> None:
        if self.status is not None:
            now = self.running()
            elapsed = time.monotonic() - self.t0
            self.status(f"[{elapsed:6.1f}s] running: {', '.join(now)}" if now else "")

    def _finished(self, name: str, status: str, log: list[str]) -> None:
        info = self.info(name)
        elapsed = time.monotonic() - self.t0
        self.seconds[name] = time.monotonic() - self.started.get(name, self.t0)
        self.body[name] = body_seconds(log)
        self.logs_dir.mkdir(parents=True, exist_ok=True)
        log_path = self.logs_dir / f"{name}.log"
        if not log_path.exists():  # the parallel scheduler wrote it already
            log_path.write_text("\n".join(log) + "\n")
        if status != "SUCCESS":
            self.failed = (info, log, str(log_path))
            tail = error_lines(log, limit=1)
            self.emit(
                format_line(
                    elapsed, info, self.rounds, f"FAILED: {tail[0] if tail else ''}", ok=False
                )
            )
            return
        pipeline_dir = collect_mod.latest_pipeline_dir(self.pipeline_root, self.pipeline_name)
        docs = collect_mod.task_documents(pipeline_dir / name) if pipeline_dir else {}
        text = describe(info, docs)
        if info.stage == "train" and self.ledgers is not None:
            text = self._train_text(info, docs, text)
        self.emit(format_line(elapsed, info, self.rounds, text))
        if info.stage == "aggregate" and self.ledgers is not None and info.round_index:
            self.emit(f"{'':9} {self._run_line(info.round_index)}")

    def _entries(self, site_id: str) -> tuple[list[Any] | None, str]:
        """(the site's ledger entries, "") or (None, why they could not be read)."""
        assert self.ledgers is not None
        try:
            return self.ledgers.read(site_id), ""
        except Exception as exc:  # the console must not fail the run
            return None, f"ledger unreadable ({type(exc).__name__}: {exc})"

    def _train_text(self, info: TaskInfo, docs: dict[str, Any], fallback: str) -> str:
        """A trained (or resumed) site's line from its ledger; abstentions keep their reason."""
        assert self.ledgers is not None
        site, rnd = info.site_id, info.round_index
        status = (docs.get("meta.json") or {}).get("status")
        if site not in self.ledgers.deltas or not rnd or status == "abstained":
            return fallback
        entries, why = self._entries(site)
        if entries is None:
            return f"{fallback}; {why}"
        privacy = round_privacy(entries, self.ledgers.run_id, rnd, self.ledgers.deltas[site])
        if status == "resumed":
            return f"{fallback}; ledger total {eps_text(privacy.lifetime_epsilon)}"
        return train_text(privacy)

    def _run_line(self, round_index: int) -> str:
        assert self.ledgers is not None
        ledgers: dict[str, list[Any]] = {}
        for site in self.ledgers.site_ids:
            entries, why = self._entries(site)
            if entries is None:
                return f"ε this run: {site} {why}"
            ledgers[site] = entries
        return run_epsilon_line(
            self.ledgers.site_ids, ledgers, self.ledgers.deltas, self.ledgers.run_id, round_index
        )


def failure_message(progress: Progress, code: int, run_dir: Path) -> str:
    if progress.failed:
        info, log, log_path = progress.failed
        where = f"site {info.site_id}" if info.site_id else "no site"
        rnd = f", round {info.round_index}" if info.round_index else ""
        lines = "\n".join("    " + x for x in error_lines(log))
        return (
            f"task {info.name} ({info.stage}, {where}{rnd}) failed:\n{lines}\n"
            f"  task log: {log_path}\n  full log: {run_dir / 'logs' / 'kfp.log'}\n"
            f"  rerun with the same --run-id to resume; exported rounds are not trained again"
        )
    return f"the pipeline process exited with code {code}; see {run_dir / 'logs' / 'kfp.log'}"
