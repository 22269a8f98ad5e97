"""Audit events from the pipeline's stages (the I/O edge between executors and chains).

Every site task appends to its site's chain `site/<id>` in the site's own bucket, signed
with the site's key; the coordinator's tasks append to `coordinator` in its GCS bucket,
signed with the coordinator's key. Two tasks of one site can run at once (evaluate of round
r beside train of round r + 1): a writer that loses the race for a position re-reads the
head and retries.

The admission record is also stored under a fixed key, `admission/<run>/<site>/<policy
digest>.json` (a copy of the chain record, signed), so the coordinator finds it without
reading the chain: `read_admission` checks it before an update of the site is accepted.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from components.audit.records import AuditFormatError, Record, signature_ok
from components.audit.store import ChainExistsError, ChainWriter, GcsStore, ObjectStore, S3Store
from components.audit.verify import COORDINATOR

ADMISSION_ROOT = "admission"
RETRIES = 8


def site_chain(site_id: str) -> str:
    return f"site/{site_id}"


def utc_now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def admission_key(run_id: str, site_id: str, policy_digest: str) -> str:
    """Where a site's admission record for this run and compiled policy lives (its bucket)."""
    return f"{ADMISSION_ROOT}/{run_id}/{site_id}/{policy_digest}.json"


@dataclass
class EventLog:
    """Appends events to one chain, retrying when a concurrent task of the same owner took the
    position first."""

    writer: ChainWriter

    def append(self, kind: str, body: dict[str, Any], refs: list[str] | None = None) -> Record:
        for _ in range(RETRIES):
            try:
                return self.writer.append(kind, body, refs)
            except ChainExistsError:
                continue
        raise ChainExistsError(
            f"audit chain {self.writer.chain} of run {self.writer.run_id}: lost the race for "
            f"the next position {RETRIES} times"
        )

    def checkpoint(self) -> None:
        for _ in range(RETRIES):
            try:
                self.writer.checkpoint()
                return
            except ChainExistsError:  # a checkpoint of this count exists already: same head
                return


def site_log(
    client: Any,
    bucket: str,
    site_id: str,
    run_id: str,
    private_pem: str,
    sse: Any = None,
    now: Callable[[], str] = utc_now,
) -> EventLog:
    """The event log of site `site_id` in its own bucket (a minio client)."""
    store = S3Store(client, bucket, sse)
    return EventLog(ChainWriter(store, run_id, site_chain(site_id), private_pem, now))


def coordinator_log(
    bucket: Any, run_id: str, private_pem: str, now: Callable[[], str] = utc_now
) -> EventLog:
    """The coordinator's event log in its GCS bucket (a `google.cloud.storage` bucket)."""
    return EventLog(ChainWriter(GcsStore(bucket), run_id, COORDINATOR, private_pem, now))


def store_admission(store: ObjectStore, key: str, record: Record) -> Record:
    """Write the admission record under its fixed key, create-only; when one is there already
    (a resumed run) it is kept if it decided the same, else ValueError naming the key."""
    try:
        store.put_new(key, record.to_json())
        return record
    except ChainExistsError:
        existing = Record.from_json(store.get(key))
    if existing.body.get("decision") != record.body.get("decision"):
        raise ValueError(
            f"{key}: the site already decided {existing.body.get('decision')!r} on this run "
            f"with this policy, now {record.body.get('decision')!r}: start a new run id"
        )
    return existing


class AdmissionMissing(ValueError):
    """No valid accepted admission of the site for this run (the reason says which)."""


def check_admission(
    raw: bytes | None,
    *,
    site_id: str,
    public_pem: str,
    run_id: str,
    policy_digest: str,
    rule: str | None = None,
    key: str = "",
) -> Record:
    """The site's admission record for this run, checked (pure): present, signed by the
    site, of kind admission, for this site, run and compiled policy, an accept, and (when
    `rule` is given) for the rule the coordinator applies. AdmissionMissing otherwise."""
    if raw is None:
        raise AdmissionMissing(
            f"no admission record at {key}: the site did not admit this run (an update "
            f"without the site's admission is refused)"
        )
    try:
        record = Record.from_json(raw)
    except AuditFormatError as exc:
        raise AdmissionMissing(f"admission record {key} unreadable: {exc}") from None
    if not signature_ok(record.payload(), record.signature, public_pem):
        raise AdmissionMissing(f"admission record {key}: signature is not the site's")
    body = record.body
    expected = {
        "kind": ("admission", record.kind),
        "site": (site_id, body.get("site")),
        "run_id": (run_id, body.get("run_id")),
        "policy_digest": (policy_digest, body.get("policy_digest")),
    }
    for name, (want, got) in expected.items():
        if want != got:
            raise AdmissionMissing(f"admission record {key}: {name} is {got!r}, expected {want!r}")
    if body.get("decision") != "accept":
        reasons = "; ".join(body.get("reasons") or []) or "no reason given"
        raise AdmissionMissing(f"the site refused this run: {reasons}")
    admitted_rule = (body.get("checked") or {}).get("rule")
    if rule is not None and admitted_rule is not None and admitted_rule != rule:
        raise AdmissionMissing(
            f"the site admitted aggregation rule {admitted_rule!r}, this round applies {rule!r}"
        )
    return record


def store_failure(bucket: str, exc: BaseException) -> str:
    """Why a request to `bucket` failed, naming the bucket and the store's error code."""
    code = getattr(exc, "code", None) or type(exc).__name__
    return f"its bucket {bucket!r} is unreachable or refused the request ({code})"


def append_or_note(write: Callable[[], object], bucket: str) -> str | None:
    """Run `write` (an audit append to the chain in `bucket`); None when it was written, else
    the note that says which record is missing from the chain and why. Only a failing object
    store is turned into a note (the store that made a site abstain may be down, and that
    must not fail the task and the run); any other error propagates."""
    from components.common.create_only import STORE_ERRORS

    try:
        write()
    except STORE_ERRORS as exc:
        return f"not in the site's audit chain: {store_failure(bucket, exc)}"
    return None


def site_task_log(task: Any, client: Any) -> EventLog:
    """The event log of a site task (`SiteTask`): the site's chain for the task's run in its
    own bucket, signed with its `SIGNING_KEY` (MissingSecretError when the task lacks it)."""
    from components.common.create_only import sse_for_policy
    from components.common.secrets import site_secret

    site = task.site
    return site_log(
        client,
        site.object_store.bucket,
        site.id,
        task.run_id,
        site_secret(site.id, "SIGNING_KEY"),
        sse_for_policy(task.policy, site.id),
    )
