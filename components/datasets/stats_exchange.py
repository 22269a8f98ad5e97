"""The `federated_zscore` statistics round through the object stores (I/O edge).

Called by the `stats` (site) and `scaling` (coordinator) stages and by initialize.

* Site (its own bucket): `release_site_statistics` checks the release against the site's
  policy (`check_budget` for the statistics round, round 0: per-round and lifetime epsilon,
  RDP), **charges** the ledger entry of kind `stats` (create-only) and only then computes the
  noised statistics and writes them create-only to `stats/<run>/<site>.json`. A run releases
  at most once per site: when the object exists it is returned as it is (no new noise, no new
  charge). A release that fails after its charge stays charged (budgets grow by what could
  have been spent; the retry charges again).
* Coordinator: `collect_site_statistics` reads each site's release with the read-only client
  the site's policy allows (prefix `stats/`, class `feature_stats`); a site without a release
  is named, not fatal. `publish_global_statistics` writes the combination create-only
  (`if_generation_match=0`) to the coordinator's bucket at `stats/<run>/global.json`, and
  `read_global_statistics` is what every site reads before it scales.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from components.common.create_only import ObjectExistsError, put_create_only, read_or_none
from components.datasets.federated_stats import (
    GlobalStats,
    SiteStats,
    StatsError,
    StatsRanges,
    combine,
    site_statistics,
    stats_event,
)
from components.privacy.ledger import (
    STATS_ROUND,
    BudgetExceededError,
    LedgerEntry,
    check_budget,
    new_stats_entry,
)
from components.privacy.ledger_store import LedgerStore

if TYPE_CHECKING:
    from minio import Minio
    from minio.sse import Sse

STATS_PREFIX = "stats/"


def site_stats_key(run_id: str, site_id: str) -> str:
    """`stats/<run>/<site>.json` in the site's own bucket."""
    return f"{STATS_PREFIX}{run_id}/{site_id}.json"


def global_stats_key(run_id: str) -> str:
    """`stats/<run>/global.json` in the coordinator's bucket."""
    return f"{STATS_PREFIX}{run_id}/global.json"


@dataclass(frozen=True)
class Release:
    """A site's release: the statistics, the ledger entry charged for them (None when the
    release already existed and was returned as is) and its object key."""

    stats: SiteStats
    entry: LedgerEntry | None
    key: str

    @property
    def reused(self) -> bool:
        return self.entry is None


def _read(client: Minio, bucket: str, key: str) -> bytes | None:
    return read_or_none(client, bucket, key)


def release_site_statistics(
    client: Minio,
    bucket: str,
    ledger: LedgerStore,
    *,
    site_id: str,
    run_id: str,
    x_train: np.ndarray,
    ranges: StatsRanges,
    noise_multiplier: float,
    delta: float,
    epsilon_per_round: float,
    lifetime_epsilon: float,
    policy_id: str,
    created_at: str,
    rng: np.random.Generator,
    dp_off_allowed: bool = False,
    sse: Sse | None = None,
) -> Release:
    """Budget check -> charge -> noise -> create-only write (see the module docstring).

    BudgetExceededError (nothing charged, nothing released) when the policy's per-round or
    lifetime epsilon would be exceeded; noise_multiplier 0 (no noise) only with
    `dp_off_allowed` (the caller's DP-off decision, `components.privacy.dp_off`)."""
    key = site_stats_key(run_id, site_id)
    existing = _read(client, bucket, key)
    if existing is not None:
        where = f"s3://{bucket}/{key}"
        return Release(SiteStats.from_json(existing, where=where), None, key)
    if noise_multiplier == 0 and not dp_off_allowed:
        raise StatsError(
            f"site {site_id}: statistics without noise need DP off, which {policy_id} does "
            "not allow here"
        )
    event = stats_event(noise_multiplier)
    if not event.non_private:
        decision = check_budget(
            ledger.entries(),
            event,
            site_id=site_id,
            run_id=run_id,
            round_=STATS_ROUND,
            epsilon_per_round=epsilon_per_round,
            lifetime_epsilon=lifetime_epsilon,
            delta=delta,
            policy_id=policy_id,
        )
        if not decision.allowed:
            raise BudgetExceededError(f"{decision.reason} (feature statistics release)")
    entry = ledger.charge(
        run_id,
        STATS_ROUND,
        lambda attempt: new_stats_entry(
            run_id=run_id,
            site_id=site_id,
            attempt=attempt,
            event=event,
            delta=delta,
            num_examples=int(len(x_train)),
            created_at=created_at,
        ),
    )
    stats = site_statistics(
        x_train, ranges, site_id=site_id, noise_multiplier=noise_multiplier, rng=rng
    )
    try:
        put_create_only(
            client, bucket, key, stats.to_json(), content_type="application/json", sse=sse
        )
    except ObjectExistsError:  # a concurrent attempt released first: theirs is the release
        theirs = _read(client, bucket, key)
        if theirs is None:
            raise
        return Release(SiteStats.from_json(theirs, where=f"s3://{bucket}/{key}"), entry, key)
    return Release(stats, entry, key)


@dataclass(frozen=True)
class Collected:
    """The releases read, and the sites without one (site id -> reason)."""

    stats: list[SiteStats]
    missing: dict[str, str]


def collect_site_statistics(readers: Mapping[str, tuple[Minio, str]], run_id: str) -> Collected:
    """Each site's release, read with {site_id: (read-only client, bucket)}; a site whose
    object is absent or invalid is named in `missing` with the reason."""
    from minio.error import S3Error

    stats: list[SiteStats] = []
    missing: dict[str, str] = {}
    for site_id, (client, bucket) in readers.items():
        key = site_stats_key(run_id, site_id)
        try:
            data = _read(client, bucket, key)
        except S3Error as exc:
            missing[site_id] = f"s3://{bucket}/{key} unreadable ({exc.code})"
            continue
        if data is None:
            missing[site_id] = f"no feature statistics at s3://{bucket}/{key}"
            continue
        try:
            release = SiteStats.from_json(data, where=f"s3://{bucket}/{key}")
        except StatsError as exc:
            missing[site_id] = str(exc)
            continue
        if release.site_id != site_id:
            missing[site_id] = f"s3://{bucket}/{key} names site {release.site_id!r}"
            continue
        stats.append(release)
    return Collected(stats, missing)


def publish_global_statistics(
    gcs: Any, bucket: str, run_id: str, collected: Collected, ranges: StatsRanges, min_sites: int
) -> GlobalStats:
    """Combine and write `stats/<run>/global.json` create-only to the coordinator's bucket.

    StatsError when fewer than `min_sites` sites released (naming the missing ones) or the
    combination is refused; an existing object (a rerun) is read back and returned."""
    from google.api_core.exceptions import PreconditionFailed

    if len(collected.stats) < min_sites:
        reasons = "; ".join(f"{s}: {r}" for s, r in sorted(collected.missing.items()))
        raise StatsError(
            f"feature statistics from {len(collected.stats)} site(s), the quorum is "
            f"{min_sites}: {reasons or 'no site released'}"
        )
    blob = gcs.bucket(bucket).blob(global_stats_key(run_id))
    published = combine(collected.stats, ranges)
    try:
        blob.upload_from_string(
            published.to_json(), content_type="application/json", if_generation_match=0
        )
    except PreconditionFailed:
        return read_global_statistics(gcs, bucket, run_id)
    return published


def read_global_statistics(gcs: Any, bucket: str, run_id: str) -> GlobalStats:
    """The published global statistics of `run_id` (StatsError when absent or invalid)."""
    from google.api_core.exceptions import NotFound

    key = global_stats_key(run_id)
    try:
        data = gcs.bucket(bucket).blob(key).download_as_bytes()
    except NotFound:
        raise StatsError(
            f"no published feature statistics at gs://{bucket}/{key}: the statistics round "
            "of this run has not finished"
        ) from None
    return GlobalStats.from_json(data, where=f"gs://{bucket}/{key}")
