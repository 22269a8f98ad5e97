"""Ledger store on the S3-compatible test server: create-only entries, races, fail closed."""

from __future__ import annotations

import io
import uuid

import pytest

from components.common.create_only import put_create_only
from components.privacy.accounting import DpSgdEvent
from components.privacy.ledger import LedgerError, entry_key, new_entry
from components.privacy.ledger_store import LedgerStore

pytestmark = pytest.mark.integration

EVENT = DpSgdEvent(0.1, 1.5, 10)


def _make(site: str, run: str, round_: int):
    def make(attempt: int):
        return new_entry(
            run_id=run,
            round_=round_,
            site_id=site,
            attempt=attempt,
            event=EVENT,
            delta=1e-5,
            batch_size=10,
            epochs=1,
            num_examples=100,
            l2_norm_clip=1.0,
            created_at="2026-11-27T08:00:00+00:00",
            sampling="poisson",
        )

    return make


@pytest.fixture()
def bucket(minio) -> str:
    name = f"l{uuid.uuid4().hex[:16]}"
    minio.make_bucket(name)
    return name


def test_charges_accumulate_across_runs_and_never_overwrite(minio, bucket) -> None:
    store = LedgerStore(minio, bucket, "site-a")
    first = store.charge("run-1", 1, _make("site-a", "run-1", 1))
    second = store.charge("run-1", 1, _make("site-a", "run-1", 1))
    third = store.charge("run-2", 1, _make("site-a", "run-2", 1))
    assert (first.attempt, second.attempt, third.attempt) == (1, 2, 1)
    assert [e.key for e in store.entries()] == [
        entry_key("site-a", "run-1", 1, 1),
        entry_key("site-a", "run-1", 1, 2),
        entry_key("site-a", "run-2", 1, 1),
    ]
    assert LedgerStore(minio, bucket, "site-b").entries() == []  # per-site prefix


def test_a_concurrent_writer_that_took_the_number_is_not_lost(minio, bucket, monkeypatch) -> None:
    store = LedgerStore(minio, bucket, "site-a")
    make = _make("site-a", "run-1", 1)
    # Another task wrote attempt 1 after this one listed the (then empty) ledger.
    rival = make(1)
    real_entries = store.entries
    calls = {"n": 0}

    def stale_then_real():
        calls["n"] += 1
        return [] if calls["n"] == 1 else real_entries()

    monkeypatch.setattr(store, "entries", stale_then_real)
    put_create_only(minio, bucket, rival.key, rival.to_json())
    ours = store.charge("run-1", 1, make)
    assert ours.attempt == 2
    monkeypatch.undo()
    assert [e.attempt for e in store.entries()] == [1, 2]


def test_corrupt_or_misplaced_entry_makes_the_ledger_unreadable(minio, bucket) -> None:
    store = LedgerStore(minio, bucket, "site-a")
    store.charge("run-1", 1, _make("site-a", "run-1", 1))
    misplaced = _make("site-a", "run-9", 9)(1)
    key = entry_key("site-a", "run-1", 2, 1)
    minio.put_object(bucket, key, io.BytesIO(misplaced.to_json()), len(misplaced.to_json()))
    with pytest.raises(LedgerError, match="misplaced"):
        store.entries()
    minio.remove_object(bucket, key)
    minio.put_object(bucket, key, io.BytesIO(b"{not json"), 9)
    with pytest.raises(LedgerError, match=key):
        store.entries()


def test_entries_under_object_lock_cannot_be_deleted_or_shortened(minio) -> None:
    import datetime as dt

    from minio.commonconfig import COMPLIANCE
    from minio.error import S3Error
    from minio.retention import Retention

    name = f"l{uuid.uuid4().hex[:16]}"
    minio.make_bucket(name, object_lock=True)
    store = LedgerStore(minio, name, "site-a", retention_days=30)
    entry = store.charge("run-1", 1, _make("site-a", "run-1", 1))
    stat = minio.stat_object(name, entry.key)
    assert stat.metadata.get("x-amz-object-lock-mode") == "COMPLIANCE"
    retention = minio.get_object_retention(name, entry.key, version_id=stat.version_id)
    assert retention.retain_until_date > dt.datetime.now(dt.UTC) + dt.timedelta(days=29)
    with pytest.raises(S3Error) as deleted:
        minio.remove_object(name, entry.key, version_id=stat.version_id)
    assert deleted.value.response.status == 403
    with pytest.raises(S3Error) as shortened:
        minio.set_object_retention(
            name,
            entry.key,
            Retention(COMPLIANCE, dt.datetime.now(dt.UTC) + dt.timedelta(days=1)),
            version_id=stat.version_id,
        )
    assert shortened.value.response.status == 403
    assert [e.key for e in store.entries()] == [entry.key]
