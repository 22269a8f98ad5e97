"""The `validate` component function (runtime-safe: imported by the executor in the image).

Declared as a component in `components/validate/component.py`; no `from __future__ import
annotations` here (KFP reads the annotations at run time).
"""

from kfp.dsl import Artifact, Output, OutputPath


def validate(
    site_id: str,
    policy_digest: str,
    data_snapshot: str,
    site_json: str,
    policy_json: str,
    run_id: str,
    kfp_job_id: str,
    round_index: int,
    contract_json: str,
    contract_digest: str,
    dataset: str,
    rounds: int,
    model_name: str,
    local_epochs: int,
    batch_size: int,
    learning_rate: float,
    noise_multiplier: float,
    l2_norm_clip: float,
    dp_enabled: bool,
    dp_sampling: str,
    seed: int,
    image: str,
    rule: str,
    coordinator_json: str,
    summary: Output[Artifact],
    admission: OutputPath(str),
):
    """Validate the site's data against its data contract; writes summary.json only.

    First the site's admission: the run (image, DP settings, destinations, rule, rounds) checked
    against the site's own copy of its policy, not the compiled one; a refusal makes the site
    abstain, with every reason. Also the run's privacy pre-flight: fails (naming the site) when `rounds` rounds at these
    DP settings would exceed the site's lifetime epsilon, before any site trains. Then emits
    `admission` (components/common/admission.py): the checked site spec, policy and run
    settings the site's train, export and evaluate tasks act on.
    """
    arguments = dict(locals())
    from pathlib import Path

    from components.common.admission import validate_arguments
    from components.common.site_task import call_with_task
    from components.validate.executor import run

    kwargs, admitted = validate_arguments(arguments)
    call_with_task(run, kwargs)
    Path(admission).write_text(admitted)
