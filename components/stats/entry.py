"""The `stats` component function (runtime-safe: imported by the executor in the image).

Declared as a component in `components/stats/component.py`; no `from __future__ import
annotations` here (KFP reads the annotations at run time).
"""

from kfp.dsl import Artifact, Input, Output


def stats(
    site_id: str,
    policy_digest: str,
    data_snapshot: str,
    round_index: int,
    admission: str,
    validation: Input[Artifact],
    stats: Output[Artifact],
):
    """Release the site's DP-noised feature statistics (federated_zscore), charged first."""
    arguments = dict(locals())
    from components.common.admission import stage_arguments
    from components.common.site_task import call_with_task
    from components.stats.executor import run

    kwargs = stage_arguments(arguments, "stats")
    kwargs["validation"] = arguments["validation"].path
    kwargs["stats"] = arguments["stats"].path
    call_with_task(run, kwargs)
