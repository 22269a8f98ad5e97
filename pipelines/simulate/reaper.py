"""Reap TFF's `worker_binary`, which outlives Python and holds pipes open.

`reap_tff_workers()` ends only descendants whose executable is TFF's worker binary, so it is
safe inside any host process (pytest with its session servers, a notebook); `install_reaper`
registers it with atexit. `reap_children(match)` is the general form.
"""

from __future__ import annotations

import atexit
import os
import sys
from collections.abc import Callable

import psutil

WORKER_NAME = "worker_binary"
_installed = False


def is_tff_worker(proc: psutil.Process) -> bool:
    """True for TensorFlow Federated's C++ worker (`.../tensorflow_federated/data/worker_binary`)."""
    try:
        return proc.name() == WORKER_NAME or any(
            part.endswith("/" + WORKER_NAME) for part in proc.cmdline()[:1]
        )
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return False


def reap_children(
    match: Callable[[psutil.Process], bool] | None = None, timeout_s: float = 3.0
) -> list[int]:
    """Terminate, then kill, the descendants of this process that `match` (None: all of them);
    returns their pids."""
    children = [c for c in psutil.Process().children(recursive=True) if match is None or match(c)]
    for child in children:
        try:
            child.terminate()
        except psutil.NoSuchProcess:
            pass
    _, alive = psutil.wait_procs(children, timeout=timeout_s)
    for child in alive:
        try:
            child.kill()
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(alive, timeout=timeout_s)
    return [c.pid for c in children]


def reap_tff_workers(timeout_s: float = 3.0) -> list[int]:
    """End TFF worker binaries started by this process (and only those)."""
    return reap_children(is_tff_worker, timeout_s)


def install_reaper() -> None:
    """Register `reap_tff_workers` with atexit once per process (idempotent)."""
    global _installed
    if not _installed:
        atexit.register(reap_tff_workers)
        _installed = True


def exit_now_if_tff_loaded(code: int) -> None:
    """End this process with `code` right away (TFF workers reaped, output flushed) when
    TensorFlow Federated was loaded; return otherwise.

    TFF 0.87's local C++ executor (a gRPC stub and a worker subprocess) can crash the
    interpreter during teardown, after the work succeeded (a `fedpipe simulate` process died
    with SIGSEGV, exit -11): skipping teardown keeps the real exit code.
    """
    if "tensorflow_federated" not in sys.modules:
        return
    reap_tff_workers()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
