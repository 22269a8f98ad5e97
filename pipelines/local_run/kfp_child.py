"""Run a compiled pipeline YAML through kfp.local in this process (the runner's child).

`python -m pipelines.local_run.kfp_child PIPELINE.yaml PIPELINE_ROOT ARGS.json [WORKERS LOGS]`:
kfp.local with the SubprocessRunner (no venv: tasks use this interpreter), arguments from a
JSON object. WORKERS 1 (default) runs kfp.local's own orchestrator, one task at a time;
WORKERS > 1 runs independent tasks concurrently (`pipelines.local_run.parallel`), task logs
under LOGS. Exit 0 when the pipeline succeeded, 3 when a task failed. The parent
(`pipelines.local_run.runner`) reads this process's stdout for progress.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def main(argv: list[str]) -> int:
    yaml_path, root, args_path = argv[:3]
    workers = int(argv[3]) if len(argv) > 3 else 1
    logs_dir = Path(argv[4]) if len(argv) > 4 else Path(root) / "logs"
    from kfp import components, local

    local.init(
        runner=local.SubprocessRunner(use_venv=False), pipeline_root=root, raise_on_error=True
    )
    pipeline = components.load_component_from_file(yaml_path)
    arguments = json.loads(Path(args_path).read_text())
    if workers > 1:
        import yaml

        from pipelines.local_run.parallel import run_pipeline_parallel
        from pipelines.local_run.progress import task_map

        spec = yaml.safe_load(Path(yaml_path).read_text().split("\n---\n")[0])
        ok = run_pipeline_parallel(
            pipeline.pipeline_spec, arguments, root, logs_dir, workers, task_map(spec)
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
