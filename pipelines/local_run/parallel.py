"""Run a compiled pipeline's DAG with kfp.local's task machinery, independent tasks in parallel.

kfp 2.13's local orchestrator runs one task at a time. This scheduler keeps everything else of
kfp.local (executor input construction, placeholder resolution, the SubprocessRunner's command
line, output collection, the pipeline-root layout) and only starts every task whose upstream
tasks are done, up to `workers` at once. How a task's program runs (`isolation`):

* "warm" (default): in a fresh fork of a warm worker that imported the heavy modules once
  (`warm_worker`, `warm_pool`); a program that is not KFP's Python executor program runs
  as a subprocess;
* "process": as kfp.local's SubprocessRunner runs it, one new interpreter per task.

Either way each task gets its placement's environment only (`task_env`), the runner's working
directory, its own log file, and `timeout_s` (killed when exceeded). Progress is reported as
`FEDPIPE_EVENT {json}` lines on stdout: `{"kind": "start"|"finish", "task": <task folder
name>, "status": "SUCCESS"|"FAILURE", "log": <path>, "seconds": float, "reason": str}` and
`{"kind": "warm", "seconds": float}` once the warm worker is ready. The first failure stops
new tasks from starting; running ones finish. A failed task's log ends with a line naming
task, site and round and why it failed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from pathlib import Path
from typing import Any

from components.validate.running_image import LOCAL_IMAGE_ENV
from pipelines.local_run.progress import EVENT_PREFIX, FAILURE_PREFIX, TaskInfo
from pipelines.local_run.task_env import task_environment
from pipelines.local_run.warm_pool import AdoptedWorker, Outcome, WarmPool
from pipelines.local_run.warm_worker import executor_program
from pipelines.task_names import STAGES

_PRINT_LOCK = threading.Lock()


def emit_event(**event: Any) -> None:
    """Print one progress event line (thread-safe, flushed)."""
    with _PRINT_LOCK:
        print(EVENT_PREFIX + json.dumps(event, sort_keys=True), flush=True)


def _priority(info: TaskInfo | None, name: str) -> tuple[int, int, str]:
    if info is None:
        return (0, 0, name)
    stage = STAGES.index(info.stage) if info.stage in STAGES else len(STAGES)
    return (info.round_index or 0, stage, name)


def failure_line(name: str, info: TaskInfo | None, reason: str) -> str:
    """`fedpipe: task train-x-r2 (train, site x, round 2) exceeded its timeout ...`."""
    if info is None:
        return f"{FAILURE_PREFIX}{name} {reason}"
    where = f"site {info.site_id}" if info.site_id else "no site"
    rnd = f", round {info.round_index}" if info.round_index else ""
    return f"{FAILURE_PREFIX}{info.name} ({info.stage}, {where}{rnd}) {reason}"


def run_subprocess(
    command: list[str], env: Mapping[str, str], log_path: Path, timeout_s: float | None
) -> Outcome:
    """Run `command` as a new process (kfp.local's SubprocessRunner way), output to the log."""
    t0 = time.monotonic()
    with log_path.open("w") as log:
        proc = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env
        )
        try:
            code = proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            return Outcome(None, timed_out=True, seconds=time.monotonic() - t0)
    if code < 0:
        return Outcome(None, -code, seconds=time.monotonic() - t0)
    return Outcome(code, seconds=time.monotonic() - t0)


def run_pipeline_parallel(
    pipeline_spec: Any,
    arguments: dict[str, Any],
    pipeline_root: str,
    logs_dir: Path,
    workers: int,
    infos: dict[str, TaskInfo] | None = None,
    isolation: str = "warm",
    timeout_s: float | None = None,
    secret_files: Mapping[str, Mapping[str, str]] | None = None,
    pool: WarmPool | None = None,
    adopt: AdoptedWorker | None = None,
) -> bool:
    """Execute `pipeline_spec` (a PipelineSpec proto); True when every task succeeded.

    `secret_files`: {executor label: {env var: file}} (`task_env.secret_files`); None keeps
    this process's environment for every task. `pool`: a started warm pool to use (and keep
    open) instead of a new one (warm isolation only); `adopt`: an already started warm
    worker for the new pool."""
    if isolation not in ("warm", "process"):
        raise ValueError(f"isolation must be 'warm' or 'process', got {isolation!r}")
    base_env = dict(os.environ)
    all_secret_vars = {v for files in (secret_files or {}).values() for v in files}
    owned = pool is None and isolation == "warm"
    if isolation == "process":
        pool = None
    elif owned:
        pool = WarmPool(
            task_environment(base_env, {}, all_secret_vars),
            logs_dir / "warm-worker.log",
            adopt=adopt,
        )
        pool.start()
    if pool is not None:
        emit_event(
            kind="warm",
            seconds=round(pool.warmup_s or 0.0, 3),
            waited=round(pool.waited_s or 0.0, 3),
        )
    try:
        return _schedule(
            pipeline_spec,
            arguments,
            pipeline_root,
            logs_dir,
            workers,
            infos or {},
            pool,
            timeout_s,
            base_env if secret_files is not None else None,
            secret_files or {},
            all_secret_vars,
        )
    finally:
        if owned and pool is not None:
            pool.close()


def _schedule(
    pipeline_spec: Any,
    arguments: dict[str, Any],
    pipeline_root: str,
    logs_dir: Path,
    workers: int,
    infos: dict[str, TaskInfo],
    pool: WarmPool | None,
    timeout_s: float | None,
    base_env: dict[str, str] | None,
    secret_files: Mapping[str, Mapping[str, str]],
    all_secret_vars: set[str],
) -> bool:
    from kfp.local import (
        dag_orchestrator,
        executor_input_utils,
        executor_output_utils,
        io,
        placeholder_utils,
        utils,
    )

    root = pipeline_spec.root
    executors = {
        name: utils.struct_to_executor_spec(ex)
        for name, ex in pipeline_spec.deployment_spec["executors"].items()
    }
    components = dict(pipeline_spec.components.items())
    dag_args = dag_orchestrator.join_user_inputs_and_defaults(arguments, root.input_definitions)
    store = io.IOStore()
    for key, value in dag_args.items():
        store.put_parent_input(key, value)
    resource = executor_input_utils.get_local_pipeline_resource_name(
        pipeline_spec.pipeline_info.name
    )
    unique_id = placeholder_utils.make_random_id()
    tasks = dict(root.dag.tasks.items())
    deps = {name: set(task.dependent_tasks) for name, task in tasks.items()}
    logs_dir.mkdir(parents=True, exist_ok=True)

    def local_name(task_name: str) -> str:
        return tasks[task_name].component_ref.name.removeprefix("comp-")

    def run_task(task_name: str, task_arguments: dict[str, Any]) -> tuple[dict[str, Any], bool]:
        task = tasks[task_name]
        component_name = task.component_ref.name
        component_spec = components[component_name]
        executor = executors[component_spec.executor_label]
        if executor.WhichOneof("spec") != "container":
            raise RuntimeError(f"task {task_name}: only Python component tasks are supported")
        task_resource = executor_input_utils.get_local_task_resource_name(component_name)
        task_root = executor_input_utils.construct_local_task_root(
            pipeline_root=pipeline_root,
            pipeline_resource_name=resource,
            task_resource_name=task_resource,
        )
        executor_input = executor_input_utils.construct_executor_input(
            component_spec=component_spec,
            arguments=task_arguments,
            task_root=task_root,
            block_input_artifact=False,
        )
        command = list(executor.container.command) + list(executor.container.args)
        command = placeholder_utils.replace_placeholders(
            full_command=command,
            executor_input_dict=executor_input_utils.executor_input_to_dict(
                executor_input=executor_input, component_spec=component_spec
            ),
            pipeline_resource_name=resource,
            task_resource_name=task_resource,
            pipeline_root=pipeline_root,
            unique_pipeline_id=unique_id,
        )
        # as kfp.local's SubprocessRunner(use_venv=False): this interpreter runs the task
        command = [part.replace("python3", sys.executable) for part in command]
        log_path = logs_dir / f"{task_resource}.log"
        env = (
            dict(os.environ)
            if base_env is None
            else task_environment(
                base_env, secret_files.get(component_spec.executor_label, {}), all_secret_vars
            )
        )
        # what a pod would run: the image the site's admission checks (running_image)
        env[LOCAL_IMAGE_ENV] = executor.container.image
        t0 = time.monotonic()
        emit_event(kind="start", task=task_resource)
        if pool is not None and executor_program(command) is not None:
            outcome = pool.run(command, env, os.getcwd(), log_path, timeout_s)
        else:
            outcome = run_subprocess(command, env, log_path, timeout_s)
        ok = outcome.ok
        reason = outcome.reason(timeout_s)
        outputs: dict[str, Any] = {}
        if ok:
            outputs = executor_output_utils.get_outputs_for_task(
                executor_input=executor_input, component_spec=component_spec
            )
        else:
            with log_path.open("a") as log:
                log.write(
                    "\n" + failure_line(task_resource, infos.get(task_resource), reason) + "\n"
                )
        emit_event(
            kind="finish",
            task=task_resource,
            status="SUCCESS" if ok else "FAILURE",
            log=str(log_path),
            seconds=round(time.monotonic() - t0, 3),
            reason=reason,
        )
        return outputs, ok

    done: set[str] = set()
    running: dict[Future[tuple[dict[str, Any], bool]], str] = {}
    failed = False
    with ThreadPoolExecutor(max_workers=max(1, workers)) as threads:
        while True:
            if not failed:
                ready = [
                    n
                    for n in tasks
                    if n not in done and n not in running.values() and deps[n] <= done
                ]
                ready.sort(key=lambda n: _priority(infos.get(local_name(n)), n))
                for name in ready[: max(0, workers - len(running))]:
                    task_arguments = dag_orchestrator.make_task_arguments(tasks[name].inputs, store)
                    running[threads.submit(run_task, name, task_arguments)] = name
            if not running:
                break
            finished, _ = wait(list(running), return_when=FIRST_COMPLETED)
            for future in finished:
                name = running.pop(future)
                try:
                    outputs, ok = future.result()
                except Exception as exc:  # a bug in scheduling, not in the task
                    emit_event(kind="error", task=local_name(name), message=str(exc))
                    outputs, ok = {}, False
                if ok:
                    for key, value in outputs.items():
                        store.put_task_output(name, key, value)
                    done.add(name)
                else:
                    failed = True
    return not failed and len(done) == len(tasks)
