"""The site's SecAgg+ component functions (runtime-safe: imported by the executor in the
image). Declared in `components/secagg_stages/component.py`; no `from __future__ import
annotations` here (KFP reads the annotations at run time)."""

from kfp.dsl import Artifact, Input, Output


def shares(
    site_id: str,
    policy_digest: str,
    data_snapshot: str,
    round_index: int,
    admission: str,
    coordinator_json: str,
    sites_json: str,
    validation: Input[Artifact],
    roster: Input[Artifact],
    shares: Output[Artifact],
):
    """Check the signed rosters, seal Shamir shares for the neighbours (SecAgg+ step 2)."""
    arguments = dict(locals())
    from components.common.admission import stage_arguments
    from components.common.site_task import call_with_task
    from components.secagg_stages.executor import run_shares

    kwargs = stage_arguments(arguments, "secagg")
    kwargs.pop("audit")  # the protocol's own records (signed, create-only) are its audit
    call_with_task(run_shares, kwargs)


def answer(
    site_id: str,
    policy_digest: str,
    data_snapshot: str,
    round_index: int,
    admission: str,
    coordinator_json: str,
    sites_json: str,
    update: Input[Artifact],
    request: Input[Artifact],
    answer: Output[Artifact],
):
    """Answer the coordinator's signed unmasking request once (SecAgg+ step 4)."""
    arguments = dict(locals())
    from components.common.admission import stage_arguments
    from components.common.site_task import call_with_task
    from components.secagg_stages.executor import run_answer

    kwargs = stage_arguments(arguments, "secagg")
    kwargs.pop("audit")  # the protocol's own records (signed, create-only) are its audit
    call_with_task(run_answer, kwargs)
