"""The `train` component function (runtime-safe: imported by the executor in the image).

Declared as a component in `components/train/component.py`; no `from __future__ import
annotations` here (KFP reads the annotations at run time).
"""

from kfp.dsl import Artifact, Input, Model, Output


def train(
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
    model_name: str,
    local_epochs: int,
    batch_size: int,
    learning_rate: float,
    noise_multiplier: float,
    l2_norm_clip: float,
    dp_enabled: bool,
    seed: int,
    validation: Input[Artifact],
    global_model: Input[Model],
    local_model: Output[Model],
):
    """Train locally (DP-SGD), account epsilon in the site's ledger; the model stays on site."""
    arguments = dict(locals())
    from components.common.kfp_args import plain_arguments
    from components.train.executor import run

    run(**plain_arguments(arguments))
