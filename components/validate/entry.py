"""The `validate` component function (runtime-safe: imported by the executor in the image).

Declared as a component in `components/validate/component.py`; no `from __future__ import
annotations` here (KFP reads the annotations at run time).
"""

from kfp.dsl import Artifact, Output


def validate(
    site_id: str,
    policy_digest: str,
    site_digest: str,
    data_snapshot: str,
    site_json: str,
    policy_json: str,
    run_id: str,
    kfp_job_id: str,
    round_index: int,
    dataset: str,
    rounds: int,
    batch_size: int,
    local_epochs: int,
    noise_multiplier: float,
    dp_enabled: bool,
    summary: Output[Artifact],
):
    """Validate the site's data against its data contract; writes summary.json only.

    Also the run's privacy pre-flight: fails (naming the site) when `rounds` rounds at these
    DP settings would exceed the site's lifetime epsilon, before any site trains.
    """
    arguments = dict(locals())
    from components.common.kfp_args import plain_arguments
    from components.validate.executor import run

    run(**plain_arguments(arguments))
