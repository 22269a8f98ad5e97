"""Run a compiled pipeline YAML through kfp.local in this process (the runner's child).

`python -m pipelines.local_run.kfp_child PIPELINE.yaml PIPELINE_ROOT ARGS.json`: kfp.local's
SubprocessRunner (no venv: tasks use this interpreter), arguments from a JSON object. Exit 0
when the pipeline succeeded, 3 when a task failed. The parent (`pipelines.local_run.runner`)
reads this process's stdout for progress.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def main(argv: list[str]) -> int:
    yaml_path, root, args_path = argv
    from kfp import components, local

    local.init(
        runner=local.SubprocessRunner(use_venv=False), pipeline_root=root, raise_on_error=True
    )
    pipeline = components.load_component_from_file(yaml_path)
    arguments = json.loads(Path(args_path).read_text())
    try:
        pipeline(**arguments)
    except RuntimeError as exc:
        print(f"FEDPIPE_PIPELINE_FAILED {exc}", flush=True)
        return 3
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
