"""Run a compiled pipeline's DAG with kfp.local's task machinery, independent tasks in parallel.

kfp 2.13's local orchestrator runs one task at a time. This scheduler keeps everything else of
kfp.local (executor input construction, placeholder resolution, the SubprocessRunner's command
line, output collection, the pipeline-root layout) and only starts every task whose upstream
tasks are done, up to `workers` at once. Each task's stdout/stderr goes to its own log file;
progress is reported as `FEDPIPE_EVENT {json}` lines on stdout:
`{"kind": "start"|"finish", "task": <task folder name>, "status": "SUCCESS"|"FAILURE",
"log": <path>, "seconds": float}`. The first failure stops new tasks from starting; running
ones finish.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from pathlib import Path
from typing import Any

from pipelines.local_run.progress import EVENT_PREFIX, TaskInfo
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


def run_pipeline_parallel(
    pipeline_spec: Any,
    arguments: dict[str, Any],
    pipeline_root: str,
    logs_dir: Path,
    workers: int,
    infos: dict[str, TaskInfo] | None = None,
) -> bool:
    """Execute `pipeline_spec` (a PipelineSpec proto); True when every task succeeded."""
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
        t0 = time.monotonic()
        emit_event(kind="start", task=task_resource)
        with log_path.open("w") as log:
            code = subprocess.run(
                command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
            ).returncode
        ok = code == 0
        outputs: dict[str, Any] = {}
        if ok:
            outputs = executor_output_utils.get_outputs_for_task(
                executor_input=executor_input, component_spec=component_spec
            )
        emit_event(
            kind="finish",
            task=task_resource,
            status="SUCCESS" if ok else "FAILURE",
            log=str(log_path),
            seconds=round(time.monotonic() - t0, 3),
        )
        return outputs, ok

    done: set[str] = set()
    running: dict[Future[tuple[dict[str, Any], bool]], str] = {}
    failed = False
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        while True:
            if not failed:
                ready = [
                    n
                    for n in tasks
                    if n not in done and n not in running.values() and deps[n] <= done
                ]
                ready.sort(key=lambda n: _priority((infos or {}).get(local_name(n)), n))
                for name in ready[: max(0, workers - len(running))]:
                    task_arguments = dag_orchestrator.make_task_arguments(tasks[name].inputs, store)
                    running[pool.submit(run_task, name, task_arguments)] = name
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
