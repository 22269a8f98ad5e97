"""The warm worker: a process that imported the heavy modules once and forks one child per task.

`python -m pipelines.local_run.warm_worker` imports TensorFlow, TensorFlow Privacy,
dp-accounting, Great Expectations, KFP's executor and every `components` module, but never
runs a TensorFlow op (its runtime, with its thread pools, starts in each task's child). Then
it reads one JSON request per line on stdin and answers JSON lines on stdout:

    request  {"id": 7, "program": [<kfp executor program>], "env": {...}, "cwd": "...",
              "log": "<task log file>"}
    answers  {"id": 7, "pid": 1234}                        the task's child started
             {"id": 7, "exit": 0} | {"id": 7, "signal": 9}  the child ended

Each task runs in a child forked from this process, so it starts in milliseconds and is
isolated as if it were a pod: nothing a task changes (module globals, Keras sessions and
graphs, TensorFlow's runtime, RNG states, open files, environment, cwd) reaches the next task,
because the next task is a new fork of the unchanged warm process. What each child resets
before the program runs, so that it starts as a fresh interpreter would:

* stdin from /dev/null, stdout and stderr to the task's log file; the request pipes closed;
* the environment replaced by the task's own (its placement's credentials only) and `cwd`;
* Python's `random` and NumPy's global RNG re-seeded from the OS (a fresh interpreter's
  state; the fork would otherwise hand every task the same one), `sys.argv` set;
* the root logger's handlers removed (so KFP's executor configures logging as in a pod);
* Keras' global session state cleared (`tf.keras.backend.clear_session`, a no-op here
  since the warm process never built a model) and TensorFlow's intra/inter-op thread
  counts taken from the task's TF_NUM_INTRAOP_THREADS / TF_NUM_INTEROP_THREADS.

With FEDPIPE_TASK_PROFILE_DIR set (the host's environment reaches every task), each child
runs its program under cProfile and writes `<that folder>/<task log name>.prof`.

A child that raises exits 1 with the traceback in its log; `os._exit(n)` or a crash ends only
the child. The program must be KFP's Python executor program (`sh -ec <script that writes $0
to ephemeral_component.py and runs kfp.dsl.executor_main with "$@"> <module source> args`);
`executor_program` recognises it. The pool (`pipelines.local_run.warm_pool`) restarts this
process if it dies and kills children that exceed their timeout.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import pkgutil
import re
import selectors
import signal
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass
from typing import Any

HEAVY_MODULES = (
    "numpy",
    "pandas",
    "tensorflow",
    "tensorflow_privacy",
    "dp_accounting",
    "great_expectations",
    "minio",
    "google.cloud.storage",
    "cryptography.hazmat.primitives.asymmetric.ed25519",
    "kfp.dsl.executor_main",
)
PROFILE_ENV = "FEDPIPE_TASK_PROFILE_DIR"
_WRITES_MODULE = re.compile(r'printf "%s" "\$0" > ')
_INSTALLS = re.compile(r"\bpip\b")
_RUNS_EXECUTOR = re.compile(
    r'_KFP_RUNTIME=true\s+\S+\s+-m\s+kfp\.dsl\.executor_main\s+--component_module_path\s+"[^"]+"'
    r'\s+"\$@"\s*$'
)


@dataclass(frozen=True)
class ExecutorProgram:
    """KFP's Python executor program: the component module's source and executor_main's args."""

    module_source: str
    args: tuple[str, ...]


def executor_program(command: list[str]) -> ExecutorProgram | None:
    """The program `command` runs, if it is KFP's Python executor program; else None."""
    if len(command) < 4 or command[0] != "sh" or command[1] not in ("-ec", "-c"):
        return None
    script = command[2]
    if (
        _INSTALLS.search(script)
        or "ephemeral_component.py" not in script
        or not _WRITES_MODULE.search(script)
        or not _RUNS_EXECUTOR.search(script)
    ):
        return None
    return ExecutorProgram(command[3], tuple(command[4:]))


def warm_up(extra: tuple[str, ...] = ()) -> list[str]:
    """Import the heavy modules and every `components` module; returns what failed to import.

    Raises RuntimeError when an import started TensorFlow's runtime (forking it is unsafe)."""
    failed: list[str] = []
    for name in (*HEAVY_MODULES, *extra):
        try:
            importlib.import_module(name)
        except Exception as exc:  # a missing optional module only costs the task its import
            failed.append(f"{name}: {exc}")
    import components

    for info in pkgutil.walk_packages(components.__path__, "components."):
        try:
            importlib.import_module(info.name)
        except Exception as exc:
            failed.append(f"{info.name}: {exc}")
    from tensorflow.python.eager import context

    if context.context()._initialized:  # the one reliable probe in TF 2.14
        raise RuntimeError("an import started TensorFlow's runtime; forking it is unsafe")
    return failed


def _reset_for_task(env: dict[str, str], cwd: str) -> None:
    import logging
    import random

    import numpy as np

    os.environ.clear()
    os.environ.update(env)
    os.chdir(cwd)
    random.seed()
    np.random.seed()
    for handler in list(logging.root.handlers):
        logging.root.removeHandler(handler)
    import tensorflow as tf

    for name, setter in (  # before anything starts TensorFlow's runtime in this child
        ("TF_NUM_INTRAOP_THREADS", tf.config.threading.set_intra_op_parallelism_threads),
        ("TF_NUM_INTEROP_THREADS", tf.config.threading.set_inter_op_parallelism_threads),
    ):
        if env.get(name, "").isdigit():
            with contextlib.suppress(RuntimeError):
                setter(int(env[name]))
    tf.keras.backend.clear_session()


def run_program(program: ExecutorProgram) -> int:
    """Run KFP's executor program in this process (a task's child); its exit code."""
    import runpy

    folder = tempfile.mkdtemp()
    path = os.path.join(folder, "ephemeral_component.py")
    with open(path, "w") as handle:
        handle.write(program.module_source)
    os.environ["_KFP_RUNTIME"] = "true"
    sys.argv = ["executor_main.py", "--component_module_path", path, *program.args]
    try:
        runpy.run_module("kfp.dsl.executor_main", run_name="__main__", alter_sys=True)
    except SystemExit as exc:
        code = exc.code
        if code is None:
            return 0
        if isinstance(code, int):
            return code
        print(code, file=sys.stderr)
        return 1
    except BaseException:
        traceback.print_exc()
        return 1
    return 0


def profile_path(folder: str, log: str) -> str:
    """Where a task's profile goes: `<folder>/<its log's file name without suffix>.prof`."""
    return os.path.join(folder, os.path.splitext(os.path.basename(log))[0] + ".prof")


def _profiled(program: ExecutorProgram, log: str) -> int:
    """`run_program`, under cProfile when the task's environment sets PROFILE_ENV to a folder
    (a developer's tool: `FEDPIPE_TASK_PROFILE_DIR=/tmp/p fedpipe run --local ...`, warm mode
    only; read the profiles with `python -m pstats`)."""
    folder = os.environ.get(PROFILE_ENV)
    if not folder:
        return run_program(program)
    import cProfile

    profiler = cProfile.Profile()
    try:
        return profiler.runcall(run_program, program)
    finally:
        os.makedirs(folder, exist_ok=True)
        profiler.dump_stats(profile_path(folder, log))


def _child(request: dict[str, Any], protocol_fds: tuple[int, ...]) -> None:
    """In the forked child: become the task, run it, never return."""
    code = 1
    try:
        for fd in protocol_fds:
            os.close(fd)
        signal.set_wakeup_fd(-1)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        log = os.open(request["log"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.dup2(log, 1)
        os.dup2(log, 2)
        os.close(log)
        os.close(null)
        _reset_for_task(request["env"], request["cwd"])
        program = ExecutorProgram(request["program"][3], tuple(request["program"][4:]))
        code = _profiled(program, request["log"])
    except BaseException:
        with contextlib.suppress(BaseException):
            traceback.print_exc()
    finally:
        with contextlib.suppress(BaseException):
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(code if 0 <= code < 256 else 1)


def serve() -> int:
    """The worker's loop (see the module docstring); returns when stdin closes."""
    os.environ["_KFP_RUNTIME"] = "true"  # as KFP's executor program sets it
    proto_in = os.dup(0)
    proto_out = os.dup(1)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    os.dup2(2, 1)  # stray prints of imports must not reach the protocol
    t0 = time.monotonic()
    failed = warm_up()
    import gc

    gc.collect()
    gc.freeze()  # the imported objects: never scanned by a child's collector, so never copied
    for failure in failed:  # such a module is imported by the task itself, as in a pod
        print(f"warm worker: not pre-imported: {failure}", file=sys.stderr, flush=True)
    note = {"ready": True, "seconds": round(time.monotonic() - t0, 3), "import_failures": failed}
    out = os.fdopen(proto_out, "w", buffering=1)
    out.write(json.dumps(note) + "\n")

    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_w, False)
    os.set_blocking(wake_r, False)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    signal.set_wakeup_fd(wake_w)
    selector = selectors.DefaultSelector()
    selector.register(proto_in, selectors.EVENT_READ, "request")
    selector.register(wake_r, selectors.EVENT_READ, "child")
    children: dict[int, int] = {}  # pid -> request id
    buffer = b""
    open_input = True
    while open_input or children:
        for key, _ in selector.select(timeout=1.0):
            if key.data == "child":
                with contextlib.suppress(BlockingIOError):
                    os.read(wake_r, 4096)
                continue
            chunk = os.read(proto_in, 65536)
            if not chunk:
                open_input = False
                selector.unregister(proto_in)
                continue
            buffer += chunk
            while b"\n" in buffer:
                line, buffer = buffer.split(b"\n", 1)
                if not line.strip():
                    continue
                request = json.loads(line)
                sys.stdout.flush()
                sys.stderr.flush()
                pid = os.fork()
                if pid == 0:
                    _child(request, (proto_in, proto_out, wake_r, wake_w))
                children[pid] = request["id"]
                out.write(json.dumps({"id": request["id"], "pid": pid}) + "\n")
        while children:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break
            rid = children.pop(pid, None)
            if rid is None:
                continue
            if os.WIFSIGNALED(status):
                answer = {"id": rid, "signal": os.WTERMSIG(status)}
            else:
                answer = {"id": rid, "exit": os.waitstatus_to_exitcode(status)}
            out.write(json.dumps(answer) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(serve())
