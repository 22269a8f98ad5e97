"""The kfp.local child process of a local run: its environment, start, output and stop.

The pipeline runs in `python -m pipelines.local_run.kfp_child` in its own process group, so
Ctrl-C reaches the runner, which then stops the whole group (SIGTERM, then SIGKILL).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

from pipelines.local_run.reporter import Progress


def child_env(stores_env: dict[str, str], run_dir: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(stores_env)
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    env.setdefault("PYTHONWARNINGS", "ignore::FutureWarning,ignore::DeprecationWarning")
    env["PYTHONUNBUFFERED"] = "1"
    env["FEDPIPE_GENERATED_DIR"] = str(run_dir / "generated")
    env["FEDPIPE_RUN_DIR"] = str(run_dir)
    return env


def terminate(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


def execute_pipeline(
    yaml_path: Path,
    arguments: dict[str, Any],
    run_dir: Path,
    env: dict[str, str],
    progress: Progress,
    workers: int = 1,
    isolation: str = "warm",
    timeout_s: float | None = None,
    secrets_path: Path | None = None,
    warm_worker: subprocess.Popen[bytes] | None = None,
) -> int:
    """Run the pipeline in a child process (own process group); feed its stdout to progress.

    `isolation`, `timeout_s` and `secrets_path` as `pipelines.local_run.kfp_child` takes them;
    `warm_worker` (started early by the runner) is handed over through its pipes."""
    args_path = run_dir / "compiled" / "arguments.json"
    args_path.write_text(json.dumps(arguments, indent=1, sort_keys=True))
    log_path = run_dir / "logs" / "kfp.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    cmd = [
        sys.executable,
        "-m",
        "pipelines.local_run.kfp_child",
        str(yaml_path),
        str(run_dir / "kfp"),
        str(args_path),
        "--workers",
        str(workers),
        "--logs",
        str(progress.logs_dir),
        "--isolation",
        isolation,
    ]
    if timeout_s is not None:
        cmd += ["--timeout", str(timeout_s)]
    if secrets_path is not None:
        cmd += ["--secrets", str(secrets_path)]
    fds: tuple[int, ...] = ()
    if warm_worker is not None and warm_worker.stdin and warm_worker.stdout:
        fds = (warm_worker.stdin.fileno(), warm_worker.stdout.fileno())
        cmd += ["--warm-worker", f"{warm_worker.pid}:{fds[0]}:{fds[1]}"]
    proc = subprocess.Popen(
        cmd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        text=True,
        bufsize=1,
        env=env,
        start_new_session=True,  # Ctrl-C reaches us; we stop the child's group ourselves
        pass_fds=fds,
    )
    if fds and warm_worker is not None and warm_worker.stdin is not None:
        warm_worker.stdin.close()  # the child holds it now; its exit ends the warm worker
    try:
        with log_path.open("w") as log:
            assert proc.stdout is not None
            for line in proc.stdout:
                log.write(line)
                progress.feed(line)
        return proc.wait()
    finally:
        terminate(proc)


def start_warm_worker(env: dict[str, str], log_path: Path) -> subprocess.Popen[bytes]:
    """Start the warm worker now, so that its imports overlap the run's set-up."""
    from pipelines.local_run.task_env import HIDDEN
    from pipelines.local_run.warm_pool import start_worker

    return start_worker({k: v for k, v in env.items() if k not in HIDDEN}, log_path)


def stop_warm_worker(proc: subprocess.Popen[bytes] | None) -> None:
    """Close the warm worker's input (it exits once its tasks ended); kill it if it lingers."""
    if proc is None:
        return
    for stream in (proc.stdin, proc.stdout):
        with contextlib.suppress(OSError):
            if stream is not None:
                stream.close()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)
