"""Reap child processes at exit: TFF's `worker_binary` outlives Python and holds pipes open."""

from __future__ import annotations

import atexit

import psutil

_installed = False


def reap_children(timeout_s: float = 3.0) -> list[int]:
    """Terminate (then kill) every descendant of this process; returns the pids reaped."""
    children = psutil.Process().children(recursive=True)
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


def install_reaper() -> None:
    """Register `reap_children` with atexit once per process (idempotent)."""
    global _installed
    if not _installed:
        atexit.register(reap_children)
        _installed = True
