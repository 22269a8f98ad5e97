"""Pre-flight privacy budget: can a site afford the whole run before anyone trains?

Runs inside `validate` (once per run, on the site's own nodes, against the site's own
ledger). Train still checks every round (`components.privacy.ledger.check_budget`); this check
makes a run that would exceed a site's *lifetime* budget stop up front, naming the site,
instead of training some rounds and abstaining later.
"""

from __future__ import annotations

from components.common.create_only import STORE_ERRORS, sse_for_policy
from components.common.site_task import SiteTask
from components.datasets.io import ClientFactory, site_client_factory
from components.privacy.accounting import dp_sgd_event
from components.privacy.ledger import BudgetExceededError, LedgerError, check_run_budget
from components.privacy.ledger_store import LedgerStore


def preflight_budget(
    task: SiteTask,
    *,
    num_examples: int,
    rounds: int,
    batch_size: int,
    local_epochs: int,
    noise_multiplier: float,
    client_factory: ClientFactory | None = None,
) -> None:
    """Raise BudgetExceededError (site named) when `rounds` rounds of DP-SGD at these settings
    would exceed the site's `dp.lifetime_epsilon`; also when the ledger cannot be read
    (fail closed). Settings the trainer would refuse (batch > rows) are left to train.
    `task`: validate's parsed, cross-checked inputs (`parse_site_task`)."""
    if not 0 < batch_size <= num_examples or local_epochs < 1:
        return
    planned = dp_sgd_event(num_examples, batch_size, local_epochs, noise_multiplier)
    site, policy = task.site, task.policy
    site_id = site.id
    client = (client_factory or site_client_factory(site))()
    store = LedgerStore(client, site.object_store.bucket, site_id, sse_for_policy(policy, site_id))
    try:
        entries = store.entries()
    except (LedgerError, *STORE_ERRORS) as exc:
        raise BudgetExceededError(
            f"site {site_id}: privacy ledger unreadable, refusing to start the run: {exc}"
        ) from None
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
    )
    if not decision.allowed:
        raise BudgetExceededError(decision.reason)
