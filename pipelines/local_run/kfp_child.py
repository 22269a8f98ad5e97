"""Run a compiled pipeline YAML through kfp.local in this process (the runner's child).

`python -m pipelines.local_run.kfp_child PIPELINE.yaml PIPELINE_ROOT ARGS.json [--workers N]
[--logs DIR] [--isolation warm|process] [--timeout SECONDS] [--secrets FILE]`: kfp.local with
the SubprocessRunner (no venv: tasks use this interpreter), arguments from a JSON object.
`--isolation process --workers 1` runs kfp.local's own orchestrator, one task at a time; any
other combination runs independent tasks concurrently (`pipelines.local_run.parallel`), in
warm workers or new processes, task logs under --logs, each task with its placement's
secrets only (--secrets: `task_env.secret_files` as JSON); --warm-worker: a warm worker
the runner started, reached through inherited pipe fds. Exit 0 when the pipeline
succeeded, 3 when a task failed. The parent (`pipelines.local_run.child`) reads this
process's stdout for progress.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="kfp_child")
    parser.add_argument("yaml_path")
    parser.add_argument("root")
    parser.add_argument("args_path")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--logs", type=Path, default=None)
    parser.add_argument("--isolation", choices=["warm", "process"], default="warm")
    parser.add_argument("--timeout", type=float, default=None)
    parser.add_argument("--secrets", type=Path, default=None)
    parser.add_argument("--warm-worker", default=None, metavar="PID:STDIN_FD:STDOUT_FD")
    args = parser.parse_args(argv)
    logs_dir = args.logs or Path(args.root) / "logs"
    from kfp import components, local

    local.init(
        runner=local.SubprocessRunner(use_venv=False), pipeline_root=args.root, raise_on_error=True
    )
    pipeline = components.load_component_from_file(args.yaml_path)
    arguments = json.loads(Path(args.args_path).read_text())
    if args.isolation == "warm" or args.workers > 1:
        import yaml

        from pipelines.local_run.parallel import run_pipeline_parallel
        from pipelines.local_run.progress import task_map

        spec = yaml.safe_load(Path(args.yaml_path).read_text().split("\n---\n")[0])
        from pipelines.local_run.warm_pool import AdoptedWorker

        secrets = json.loads(args.secrets.read_text()) if args.secrets else None
        adopt = None
        if args.warm_worker and args.isolation == "warm":
            pid, stdin_fd, stdout_fd = (int(x) for x in args.warm_worker.split(":"))
            adopt = AdoptedWorker(pid, stdin_fd, stdout_fd)
        ok = run_pipeline_parallel(
            pipeline.pipeline_spec,
            arguments,
            args.root,
            logs_dir,
            max(1, args.workers),
            task_map(spec),
            isolation=args.isolation,
            timeout_s=args.timeout,
            secret_files=secrets,
            adopt=adopt,
        )
        return 0 if ok else 3
    try:
        pipeline(**arguments)
    except RuntimeError as exc:
        print(f"FEDPIPE_PIPELINE_FAILED {exc}", flush=True)
        return 3
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
