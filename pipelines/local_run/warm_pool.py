"""Client side of the warm worker (`pipelines.local_run.warm_worker`): start, run tasks, recover.

`WarmPool.run` sends one task to the warm worker, which forks a child for it, and waits for
its end. Many threads may call `run` at once (one child per task). A task that exceeds its
timeout is killed (SIGKILL); a task that raises, calls `os._exit` or crashes ends only its
child. When the warm worker itself dies, the tasks it was running fail (`worker_lost`) and
the next `run` starts a new one.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

START_TIMEOUT_S = 900.0  # the warm-up imports take ~45 s on a loaded 2-core machine


class WarmPoolError(RuntimeError):
    """The warm worker could not be started."""


def start_worker(env: dict[str, str], log_path: Path) -> subprocess.Popen[bytes]:
    """Start a warm worker process (it imports for a while; `WarmPool` waits for it)."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "pipelines.local_run.warm_worker"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=log,
            env=env,
        )


class AdoptedWorker:
    """A warm worker another process started, reached through its inherited pipe fds.

    The runner starts the worker early (its imports overlap object-store start-up, data and
    compile) and passes the pipes to the kfp.local child; the runner reaps it."""

    def __init__(self, pid: int, stdin_fd: int, stdout_fd: int) -> None:
        self.pid = pid
        self.stdin: IO[bytes] = os.fdopen(stdin_fd, "wb")
        self.stdout: IO[bytes] = os.fdopen(stdout_fd, "rb")
        self.returncode: int | None = None

    def poll(self) -> int | None:
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        """Nothing to reap here (the runner does); stdout stays open for the reader thread."""
        self.returncode = 0
        return 0

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGKILL)


@dataclass(frozen=True)
class Outcome:
    """How a task's process ended: exit code, or signal; whether it ran out of time."""

    exit_code: int | None
    signal: int | None = None
    timed_out: bool = False
    worker_lost: bool = False
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and not self.timed_out and not self.worker_lost

    def reason(self, timeout_s: float | None) -> str:
        """Why the task failed, in words ('' when it did not)."""
        if self.timed_out:
            return f"exceeded its timeout of {timeout_s:g} s and was killed"
        if self.worker_lost:
            return "its warm worker died while it ran (the worker was restarted)"
        if self.signal is not None:
            return f"was killed by signal {signal.Signals(self.signal).name}"
        if self.exit_code not in (0, None):
            return f"exited with code {self.exit_code}"
        return ""


@dataclass
class _Pending:
    done: threading.Event = field(default_factory=threading.Event)
    started: threading.Event = field(default_factory=threading.Event)
    pid: int | None = None
    answer: dict[str, Any] | None = None
    worker: Any = None  # the warm worker process it was sent to


class WarmPool:
    """One warm worker process; `run` executes a task's program in a fresh fork of it."""

    def __init__(
        self, env: dict[str, str], log_path: Path, adopt: AdoptedWorker | None = None
    ) -> None:
        self.env = dict(env)
        self.log_path = log_path
        self.restarts = 0
        self.tasks_run = 0  # programs sent to the warm worker
        self.warmup_s: float | None = None  # the worker's import seconds
        self.waited_s: float | None = None  # how long start() waited for them
        self._lock = threading.Lock()
        self._proc: Any = None  # subprocess.Popen or AdoptedWorker
        self._adopt = adopt
        self._alive = False
        self._pending: dict[int, _Pending] = {}
        self._next_id = 0
        self._reader: threading.Thread | None = None

    def start(self) -> None:
        """Start the warm worker (if not running) and wait until it imported everything."""
        with self._lock:
            self._ensure_started()

    def _ensure_started(self) -> None:
        if self._proc is not None and self._alive and self._proc.poll() is None:
            return
        if self._proc is not None:
            self.restarts += 1
            with contextlib.suppress(Exception):
                self._proc.kill()
                self._proc.wait(timeout=10)
        proc: Any
        if self._adopt is not None:
            proc, self._adopt = self._adopt, None
        else:
            proc = start_worker(self.env, self.log_path)
        assert proc.stdout is not None
        t0 = time.monotonic()
        ready = proc.stdout.readline()
        if not ready:
            proc.wait(timeout=30)
            raise WarmPoolError(f"the warm worker exited while importing; see {self.log_path}")
        note = json.loads(ready)
        self.warmup_s = float(note.get("seconds", 0.0))
        self.waited_s = time.monotonic() - t0
        self._proc = proc
        self._alive = True
        self._reader = threading.Thread(target=self._read, args=(proc,), daemon=True)
        self._reader.start()

    def _read(self, proc: subprocess.Popen[bytes]) -> None:
        assert proc.stdout is not None
        for raw in proc.stdout:
            answer = json.loads(raw)
            with self._lock:
                pending = self._pending.get(int(answer["id"]))
            if pending is None:
                continue
            if "pid" in answer:
                pending.pid = int(answer["pid"])
                pending.started.set()
            else:
                pending.answer = answer
                pending.done.set()
        # the worker is gone: whatever it ran is lost (its orphaned children are killed)
        with self._lock:
            if self._proc is proc:
                self._alive = False
            lost = [p for p in self._pending.values() if p.worker is proc and not p.done.is_set()]
        for pending in lost:
            if pending.pid is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pending.pid, signal.SIGKILL)
            pending.answer = {"lost": True}
            pending.started.set()
            pending.done.set()

    def run(
        self,
        program: list[str],
        env: dict[str, str],
        cwd: str,
        log: Path,
        timeout_s: float | None = None,
    ) -> Outcome:
        """Run KFP's executor `program` as a task; its `Outcome` (never raises for the task)."""
        t0 = time.monotonic()
        request = {"program": program, "env": env, "cwd": cwd, "log": str(log)}
        with self._lock:
            self._ensure_started()
            self._next_id += 1
            rid = self._next_id
            assert self._proc is not None and self._proc.stdin is not None
            pending = self._pending[rid] = _Pending(worker=self._proc)
            self.tasks_run += 1
            try:
                self._proc.stdin.write((json.dumps({"id": rid, **request}) + "\n").encode())
                self._proc.stdin.flush()
            except (BrokenPipeError, OSError):
                del self._pending[rid]
                return Outcome(None, worker_lost=True, seconds=time.monotonic() - t0)
        try:
            timed_out = False
            if not pending.done.wait(timeout_s):
                timed_out = True
                pending.started.wait(30)
                if pending.pid is not None:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pending.pid, signal.SIGKILL)
                pending.done.wait(60)
            answer = pending.answer or {"lost": True}
            seconds = time.monotonic() - t0
            if answer.get("lost"):
                return Outcome(None, worker_lost=True, timed_out=timed_out, seconds=seconds)
            if "signal" in answer:
                return Outcome(None, int(answer["signal"]), timed_out, seconds=seconds)
            return Outcome(int(answer["exit"]), None, timed_out, seconds=seconds)
        finally:
            with self._lock:
                self._pending.pop(rid, None)

    def worker_pid(self) -> int | None:
        """The warm worker's pid (None before start)."""
        return self._proc.pid if self._proc is not None else None

    def close(self) -> None:
        """Stop the warm worker (its running children are killed)."""
        with self._lock:
            proc, self._proc = self._proc, None
            pids = [p.pid for p in self._pending.values() if p.pid is not None]
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        if proc is None:
            return
        with contextlib.suppress(OSError):
            assert proc.stdin is not None
            proc.stdin.close()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)

    def __enter__(self) -> WarmPool:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
