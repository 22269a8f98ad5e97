"""The `export` component function (runtime-safe: imported by the executor in the image).

Declared as a component in `components/export/component.py`; no `from __future__ import
annotations` here (KFP reads the annotations at run time).
"""

from kfp.dsl import Artifact, Input, Model, Output


def export(
    site_id: str,
    policy_digest: str,
    data_snapshot: str,
    round_index: int,
    admission: str,
    local_model: Input[Model],
    global_model: Input[Model],
    update: Output[Artifact],
):
    """Export the signed model delta to the site's bucket; the artifact is a reference (ref.json)."""
    arguments = dict(locals())
    import tempfile
    from pathlib import Path

    from components.common.admission import stage_arguments
    from components.common.model_stash import export_from_site_bucket
    from components.common.site_task import split_task_inputs
    from components.export.executor import run

    # the model itself stays in the site's bucket; the artifact is a reference
    with tempfile.TemporaryDirectory() as scratch:
        task, paths = split_task_inputs(stage_arguments(arguments, "export"))
        export_from_site_bucket(run, task, paths, Path(scratch) / "local_model")


def export_masked(
    site_id: str,
    policy_digest: str,
    data_snapshot: str,
    round_index: int,
    admission: str,
    secagg_json: str,
    coordinator_json: str,
    sites_json: str,
    local_model: Input[Model],
    global_model: Input[Model],
    relay: Input[Artifact],
    update: Output[Artifact],
):
    """Mask the quantized update (SecAgg+) and write it to the site's bucket; the artifact is a
    reference (ref.json) with the signed manifest of the masked bytes."""
    arguments = dict(locals())
    import tempfile
    from pathlib import Path

    from components.common.admission import stage_arguments
    from components.common.model_stash import export_from_site_bucket
    from components.common.site_task import split_task_inputs
    from components.export.masked import run_masked

    with tempfile.TemporaryDirectory() as scratch:
        task, paths = split_task_inputs(stage_arguments(arguments, "export"))
        export_from_site_bucket(run_masked, task, paths, Path(scratch) / "local_model")
