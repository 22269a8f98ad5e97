"""Pre-flight privacy budget: can a site afford the whole run before anyone trains?

Runs inside `validate` (once per run, on the site's own nodes, against the site's own
ledger). Train still checks every round (`components.privacy.ledger.check_budget`); this check
makes a site that cannot afford the run abstain up front with the reason (its validation
summary does not pass, so its train abstains in every round and charges nothing), instead of
training some rounds and abstaining later. The run itself goes on while the other sites keep
the quorum; `initialize` stops it before anyone trains, naming every abstaining site, when
they do not (`components.aggregation.quorum.check_run_quorum`).
"""

from __future__ import annotations

from components.common.create_only import STORE_ERRORS, sse_for_policy
from components.common.site_task import SiteTask
from components.datasets.io import ClientFactory, site_client_factory
from components.privacy.accounting import dp_sgd_event
from components.privacy.ledger import LedgerError, check_run_budget
from components.privacy.ledger_store import LedgerStore


def _planned_stats(task: SiteTask):
    """The run's feature-statistics release when the contract asks federated_zscore."""
    data = task.data
    if data is None or data.contract.encoding.scaling != "federated_zscore":
        return None
    from components.datasets.federated_stats import stats_event
    from components.stats.executor import noise_multiplier

    return stats_event(noise_multiplier(task))


# The model's size is not known before initialize; a Skellam round calibrated to the policy's
# epsilon_per_round spends the same epsilon for any size (within 1e-6 relative: the size
# enters only the bound's second-order terms), so the pre-flight plans with one value.
PREFLIGHT_DIM = 1


def _planned_round(
    task: SiteTask, num_examples: int, batch_size: int, local_epochs: int, noise_multiplier: float
):
    """One round as train will charge it: a Skellam round (dp.mode distributed) or DP-SGD."""
    dp = task.policy.dp
    if dp.mode == "distributed":
        from components.privacy.skellam import round_plan

        return round_plan(
            dp.epsilon_per_round, dp.delta, dp.min_honest_sites or 0, PREFLIGHT_DIM
        ).round_event
    return dp_sgd_event(num_examples, batch_size, local_epochs, noise_multiplier)


def budget_abstention(
    task: SiteTask,
    *,
    num_examples: int,
    rounds: int,
    batch_size: int,
    local_epochs: int,
    noise_multiplier: float,
    client_factory: ClientFactory | None = None,
) -> str | None:
    """None when the site can afford `rounds` rounds of DP-SGD at these settings within its
    `dp.lifetime_epsilon`; else why it abstains (also when its ledger cannot be read: fail
    closed). Settings the trainer would refuse (batch > rows) are left to train.
    `task`: validate's parsed, cross-checked inputs (`parse_site_task`)."""
    if not 0 < batch_size <= num_examples or local_epochs < 1:
        return None
    planned = _planned_round(task, num_examples, batch_size, local_epochs, noise_multiplier)
    site, policy = task.site, task.policy
    site_id = site.id
    client = (client_factory or site_client_factory(site))()
    store = LedgerStore(client, site.object_store.bucket, site_id, sse_for_policy(policy, site_id))
    try:
        entries = store.entries()
    except (LedgerError, *STORE_ERRORS) as exc:
        return f"privacy ledger unreadable, not taking part in this run: {exc}"
    decision = check_run_budget(
        entries,
        planned,
        rounds=rounds,
        site_id=site_id,
        run_id=task.run_id,
        lifetime_epsilon=policy.dp.lifetime_epsilon,
        delta=policy.dp.delta,
        policy_id=policy.id,
        hide_figures=not policy.export.reveal_num_examples,
        planned_stats=_planned_stats(task),
    )
    if decision.allowed:
        return None
    return f"privacy budget: {(decision.reason or '').removeprefix(f'site {site_id}: ')}"
