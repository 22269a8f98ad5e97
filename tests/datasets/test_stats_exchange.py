"""The statistics round through real stores (S3-compatible server, GCS emulator): charge before
release, one release per run and site, missing sites named, create-only publication."""

from __future__ import annotations

import uuid

import numpy as np
import pytest

from components.datasets.federated_stats import StatsError, stats_ranges
from components.datasets.stats_exchange import (
    collect_site_statistics,
    publish_global_statistics,
    read_global_statistics,
    release_site_statistics,
    site_stats_key,
)
from components.domain.contract import DataContract
from components.privacy.ledger import BudgetExceededError
from components.privacy.ledger_store import LedgerStore

pytestmark = pytest.mark.integration

CONTRACT = DataContract.parse_obj(
    {
        "apiVersion": "fedpipe.dev/v1",
        "kind": "DataContract",
        "name": "toy",
        "columns": [
            {"name": "a", "type": "float", "range": [0, 10]},
            {"name": "b", "type": "int", "range": [-2, 2]},
        ],
        "target": {"task": "binary", "classes": [0, 1]},
        "rows": {"min_train": 1, "min_holdout": 1},
        "encoding": {"scaling": "federated_zscore", "statistics": {"epsilon": 1.0}},
    }
)
RANGES = stats_ranges(CONTRACT)


def _bucket(minio) -> str:
    name = f"s{uuid.uuid4().hex[:16]}"
    minio.make_bucket(name)
    return name


def _release(minio, bucket, site, run="run-1", z=4.0, lifetime=10.0, seed=0):
    return release_site_statistics(
        minio,
        bucket,
        LedgerStore(minio, bucket, site),
        site_id=site,
        run_id=run,
        x_train=np.tile([[1.0, 2], [9.0, -2], [5.0, 0]], (200, 1)),  # 600 rows
        ranges=RANGES,
        noise_multiplier=z,
        delta=1e-5,
        epsilon_per_round=3.0,
        lifetime_epsilon=lifetime,
        policy_id="eu-health",
        created_at="2026-12-06T21:00:00Z",
        rng=np.random.default_rng(seed),
    )


def test_a_site_is_charged_once_and_releases_once_per_run(minio):
    bucket = _bucket(minio)
    first = _release(minio, bucket, "site-a")
    assert first.entry is not None and first.entry.kind == "stats"
    again = _release(minio, bucket, "site-a", seed=1)  # a rerun: the same release, no charge
    assert again.reused and again.stats == first.stats
    entries = LedgerStore(minio, bucket, "site-a").entries()
    assert [(e.kind, e.round, e.attempt) for e in entries] == [("stats", 0, 1)]
    assert minio.stat_object(bucket, site_stats_key("run-1", "site-a")).size > 0


def test_a_release_beyond_the_lifetime_budget_charges_and_writes_nothing(minio):
    bucket = _bucket(minio)
    with pytest.raises(BudgetExceededError, match="site-a: lifetime epsilon .* statistics"):
        _release(minio, bucket, "site-a", z=2.0, lifetime=1.0)  # z 2: about 2.3 < 3 per round, > 1
    assert LedgerStore(minio, bucket, "site-a").entries() == []
    with pytest.raises(StatsError, match="without noise need DP off"):
        _release(minio, bucket, "site-a", z=0.0)


def test_the_coordinator_combines_what_was_released_and_names_the_rest(minio, gcs):
    bucket_a, bucket_b = _bucket(minio), _bucket(minio)
    released = _release(minio, bucket_a, "site-a")
    collected = collect_site_statistics(
        {"site-a": (minio, bucket_a), "site-b": (minio, bucket_b)}, "run-1"
    )
    assert [s.site_id for s in collected.stats] == ["site-a"]
    assert "no feature statistics" in collected.missing["site-b"]
    coord = gcs.create_bucket(f"c{uuid.uuid4().hex[:16]}").name
    with pytest.raises(StatsError, match="from 1 site.*quorum is 2: site-b: no feature"):
        publish_global_statistics(gcs, coord, "run-1", collected, RANGES, min_sites=2)
    published = publish_global_statistics(gcs, coord, "run-1", collected, RANGES, min_sites=1)
    assert published.sites == ("site-a",) and published.count == released.stats.count
    assert read_global_statistics(gcs, coord, "run-1") == published
    # a rerun finds the published object and returns it unchanged
    assert publish_global_statistics(gcs, coord, "run-1", collected, RANGES, 1) == published
    with pytest.raises(StatsError, match="has not finished"):
        read_global_statistics(gcs, coord, "run-2")
