"""Shared helpers of the pipeline tests: the example federation and compiling small pipelines."""

from collections.abc import Callable
from pathlib import Path

import yaml
from kfp import compiler, dsl
from kfp.dsl import Artifact, Output, PipelineTask

from components.domain.federation import Federation
from pipelines.config.loader import load_federation
from tests.support.paths import POLICIES_DIR, SITES_DIR


def example_federation() -> Federation:
    """The checked-in example federation (sites/, policies/)."""
    return load_federation(SITES_DIR, POLICIES_DIR)


@dsl.component(base_image="ghcr.io/fedpipe/fedpipe:0.1.0", install_kfp_package=False)
def probe(site_id: str, out: Output[Artifact]):
    import os

    os.makedirs(out.path, exist_ok=True)


def compile_one_task(tmp_path: Path, apply: Callable[[PipelineTask], PipelineTask]):
    """Compile a pipeline of one `probe` task after `apply(task)`.

    Returns (pipeline spec dict, its executor spec dict, kubernetes executor config dict).
    """

    @dsl.pipeline(name="one-task")
    def one_task():
        task = probe(site_id="x")
        assert apply(task) is task

    path = tmp_path / "one.yaml"
    compiler.Compiler().compile(one_task, str(path))
    docs = list(yaml.safe_load_all(path.read_text()))
    spec = docs[0]
    executors = (
        docs[1]["platforms"]["kubernetes"]["deploymentSpec"]["executors"] if len(docs) > 1 else {}
    )
    return spec, spec["deploymentSpec"]["executors"]["exec-probe"], executors.get("exec-probe", {})
