"""The `evaluate` component function (runtime-safe: imported by the executor in the image).

Declared as a component in `components/evaluate/component.py`; no `from __future__ import
annotations` here (KFP reads the annotations at run time).
"""

from kfp.dsl import Artifact, Input, Model, Output


def evaluate(
    site_id: str,
    policy_digest: str,
    data_snapshot: str,
    round_index: int,
    admission: str,
    global_model: Input[Model],
    evaluation: Output[Artifact],
):
    """Evaluate the round's global model on the site's holdout; writes metrics.json."""
    arguments = dict(locals())
    from components.common.admission import stage_arguments
    from components.common.site_task import call_with_task
    from components.evaluate.executor import run

    call_with_task(run, stage_arguments(arguments, "evaluate"))
