"""The `initialize` component function (runtime-safe: imported by the executor in the image).

Declared as a component in `components/initialize/component.py`; no `from __future__ import
annotations` here (KFP reads the annotations at run time).
"""

from kfp.dsl import Model, Output


def initialize(
    coordinator_json: str,
    config_digest: str,
    run_id: str,
    kfp_job_id: str,
    model_name: str,
    dataset: str,
    seed: int,
    resume: bool,
    global_model: Output[Model],
):
    """Seeded initial global model, or (resume) the latest one from the coordinator's bucket."""
    arguments = dict(locals())
    from components.common.kfp_args import plain_arguments
    from components.initialize.executor import run

    run(**plain_arguments(arguments))
