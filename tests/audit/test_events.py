"""Audit events (pure, in-memory store): racing writers of one chain, the admission check."""

from __future__ import annotations

import pytest

from components.audit.events import (
    AdmissionMissing,
    EventLog,
    admission_key,
    check_admission,
    store_admission,
)
from components.audit.records import append
from components.audit.store import ChainExistsError, ChainWriter
from components.audit.verify import Chain, verify_chain
from components.common.manifest import generate_keypair

PRIVATE, PUBLIC = generate_keypair()


class MemStore:
    def __init__(self) -> None:
        self.objects: dict[str, bytes] = {}

    def put_new(self, key: str, data: bytes) -> None:
        if key in self.objects:
            raise ChainExistsError(key)
        self.objects[key] = data

    def get(self, key: str) -> bytes:
        return self.objects[key]

    def keys(self, prefix: str) -> list[str]:
        return sorted(k for k in self.objects if k.startswith(prefix))


class RacingStore(MemStore):
    """Before our first record write lands, another task of the site appends one."""

    def __init__(self, other: ChainWriter | None = None) -> None:
        super().__init__()
        self.other, self.raced = other, False

    def put_new(self, key: str, data: bytes) -> None:
        if not self.raced and self.other is not None and "/records/" in key:
            self.raced = True
            self.other.append("evaluation", {"round": 1, "summary": "the other task"})
        super().put_new(key, data)


def test_a_writer_that_loses_the_race_retries_after_the_new_head():
    store = RacingStore()
    now = lambda: "2026-12-06T00:00:00Z"  # noqa: E731
    other = ChainWriter(store, "run-1", "site/a", PRIVATE, now)
    store.other = other
    log = EventLog(ChainWriter(store, "run-1", "site/a", PRIVATE, now))
    record = log.append("charge", {"round": 2, "summary": "ε 1.0"})
    assert record.seq == 1
    from components.audit.records import Record

    records = [Record.from_json(store.get(k)) for k in store.keys("audit/run-1/site/a/records/")]
    assert [r.kind for r in records] == ["evaluation", "charge"]
    assert verify_chain(Chain("site/a", records, (), PUBLIC)) == []


def _admission(**body):
    base = {
        "round": 0,
        "site": "a",
        "run_id": "run-1",
        "policy_digest": "d" * 64,
        "decision": "accept",
        "reasons": [],
        "checked": {"rule": "fedavg"},
    }
    return append(None, "site/a", "admission", {**base, **body}, PRIVATE, "t")


def check(raw, **kwargs):
    args = {
        "site_id": "a",
        "public_pem": PUBLIC,
        "run_id": "run-1",
        "policy_digest": "d" * 64,
        "rule": "fedavg",
        "key": "s3://b/admission/run-1/a/d.json",
    }
    return check_admission(raw, **{**args, **kwargs})


def test_check_admission_accepts_the_sites_own_accept():
    record = _admission()
    assert check(record.to_json()).hash == record.hash


@pytest.mark.parametrize(
    ("raw", "kwargs", "message"),
    [
        (None, {}, "no admission record at s3://b/admission/run-1/a/d.json"),
        (b"{", {}, "unreadable"),
        (_admission().to_json(), {"public_pem": generate_keypair()[1]}, "signature is not"),
        (_admission(run_id="run-0").to_json(), {}, "run_id is 'run-0', expected 'run-1'"),
        (_admission(policy_digest="e" * 64).to_json(), {}, "policy_digest is"),
        (
            _admission(decision="refuse", reasons=["dp.delta: looser"]).to_json(),
            {},
            "the site refused this run: dp.delta: looser",
        ),
        (_admission().to_json(), {"rule": "median"}, "admitted aggregation rule 'fedavg'"),
    ],
)
def test_check_admission_refuses(raw, kwargs, message):
    with pytest.raises(AdmissionMissing, match=message.replace("(", r"\(").replace(".", r"\.")):
        check(raw, **kwargs)


def test_store_admission_keeps_the_same_decision_and_refuses_another():
    store = MemStore()
    key = admission_key("run-1", "a", "d" * 64)
    first = store_admission(store, key, _admission())
    assert store_admission(store, key, _admission()).hash == first.hash
    with pytest.raises(ValueError, match="already decided 'accept'"):
        store_admission(store, key, _admission(decision="refuse"))


def test_append_or_note_writes_or_names_the_failing_bucket():
    """One helper for 'append, but a dead store must not fail the task' (train, evaluate)."""
    from minio.error import S3Error

    from components.audit.events import append_or_note

    written: list[str] = []
    assert append_or_note(lambda: written.append("x"), "b-fl") is None
    assert written == ["x"]

    def dead() -> None:
        raise S3Error(None, "AccessDenied", "no", "r", "req", "host")

    note = append_or_note(dead, "b-fl")
    assert note == (
        "not in the site's audit chain: its bucket 'b-fl' is unreachable or refused the "
        "request (AccessDenied)"
    )

    def bug() -> None:
        raise KeyError("not a store failure")

    with pytest.raises(KeyError):  # only a failing store becomes a note
        append_or_note(bug, "b-fl")
