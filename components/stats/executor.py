"""`stats` executor: one site's release of the `federated_zscore` statistics round.

Phases: validation passed (else abstain) → read the site's training table → noise multiplier
(the contract's `encoding.statistics`: its noise multiplier, or the smallest that spends its
epsilon at the policy's delta; none with DP off) → `release_site_statistics`: budget check,
ledger charge (kind `stats`, round 0), noised statistics written create-only to
`stats/<run>/<site>.json` in the site's own bucket (a rerun returns the existing release).
The artifact is `ref.json` (bucket, key, status, epsilon): the statistics stay in the site's
bucket, where the coordinator reads them with the read-only key the policy allows. A site that
cannot release (validation failed, budget, unreadable data or ledger) abstains: `ref.json`
says why, and the coordinator names it.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

from components.common.artifact_files import REF_FILE, validation_failure, write_json
from components.common.create_only import STORE_ERRORS, sse_for_policy
from components.common.secrets import MissingSecretError
from components.common.site_task import SiteTask
from components.datasets.features import DataError, frame_to_arrays
from components.datasets.federated_stats import (
    StatsError,
    noise_multiplier_for,
    os_entropy_generator,
    stats_ranges,
)
from components.datasets.io import ClientFactory, read_site_table, site_client_factory
from components.datasets.site import check_own_bucket
from components.datasets.stats_exchange import release_site_statistics
from components.privacy.ledger import BudgetExceededError, LedgerError
from components.privacy.ledger_store import LedgerStore, ledger_retention_days


def noise_multiplier(task: SiteTask) -> float:
    """The release's noise multiplier: 0 with DP off, else the contract's `statistics`."""
    if not task.settings.dp_enabled:
        return 0.0
    spec = task.site_data().contract.encoding.statistics
    if spec is None:
        raise StatsError(f"site {task.site_id}: the contract asks no federated_zscore statistics")
    if spec.noise_multiplier is not None:
        return float(spec.noise_multiplier)
    return noise_multiplier_for(float(spec.epsilon or 0.0), task.policy.dp.delta)


def run(
    task: SiteTask,
    *,
    validation: str,
    stats: str | Path,
    client_factory: ClientFactory | None = None,
    noise_seed: int | None = None,
    now: dt.datetime | None = None,
    audit: bool = False,
) -> dict[str, Any]:
    """Release (or abstain) and write `<stats>/ref.json`; returns it. `noise_seed` (tests and
    simulations only) makes the noise reproducible; production draws from OS entropy."""
    import numpy as np

    data, site_id = task.site_data(), task.site_id
    ref: dict[str, Any] = {"site_id": site_id, "run_id": task.run_id}

    def abstain(reason: str) -> dict[str, Any]:
        body = {**ref, "status": "abstained", "reason": f"site {site_id} abstains: {reason}"}
        write_json(stats, REF_FILE, body)
        return body

    failure = validation_failure(validation)
    if failure is not None:
        return abstain(failure)
    try:
        client = (client_factory or site_client_factory(data.site))()
        check_own_bucket(data.site, data.train_uri)
        frame = read_site_table(data.train_uri, lambda: client, site_id, data.contract)
        x, _ = frame_to_arrays(data.contract, frame, site_id)
    except DataError as exc:
        return abstain(f"data check {exc.check!r} failed: {exc.detail}")
    except MissingSecretError as exc:
        return abstain(f"cannot read its data: {exc}")
    z = noise_multiplier(task)
    policy, bucket = task.policy, data.site.object_store.bucket
    sse = sse_for_policy(policy, site_id)
    store = LedgerStore(
        client, bucket, site_id, sse=sse, retention_days=ledger_retention_days(policy)
    )
    rng = np.random.default_rng(noise_seed) if noise_seed is not None else os_entropy_generator()
    try:
        release = release_site_statistics(
            client,
            bucket,
            store,
            site_id=site_id,
            run_id=task.run_id,
            x_train=x,
            ranges=stats_ranges(data.contract),
            noise_multiplier=z,
            delta=policy.dp.delta,
            epsilon_per_round=policy.dp.epsilon_per_round,
            lifetime_epsilon=policy.dp.lifetime_epsilon,
            policy_id=policy.id,
            created_at=(now or dt.datetime.now(dt.UTC)).isoformat(),
            rng=rng,
            dp_off_allowed=not task.settings.dp_enabled,
            sse=sse,
        )
    except (BudgetExceededError, StatsError, LedgerError) as exc:
        return abstain(str(exc))
    except STORE_ERRORS as exc:
        return abstain(f"its bucket {bucket} failed ({type(exc).__name__})")
    if audit and release.entry is not None:  # the charge goes to the site's audit chain
        from components.audit.events import site_task_log

        entry = release.entry
        site_task_log(task, client).append(
            "charge",
            {
                "round": entry.round,
                "kind": entry.kind,
                "attempt": entry.attempt,
                "entry_key": entry.key,
                "epsilon": entry.epsilon,
                "delta": entry.delta,
                "summary": "feature statistics released: "
                + ("without noise (DP off)" if entry.epsilon is None else f"ε {entry.epsilon:.3f}")
                + f" charged, s3://{bucket}/{release.key}",
            },
        )
    body = {
        **ref,
        "status": "reused" if release.reused else "released",
        "bucket": bucket,
        "key": release.key,
        "noise_multiplier": z,
        "epsilon": None if release.entry is None else release.entry.epsilon,
    }
    write_json(stats, REF_FILE, body)
    return body
