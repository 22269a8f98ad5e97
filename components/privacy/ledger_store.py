"""The privacy ledger's storage: one JSON object per entry in the site's own bucket.

Layout: `ledger/<site>/<run>/round-NNNN/attempt-NNNN.json` (`components.privacy.ledger`).
Entries are written create-only (`If-None-Match: *`), under object lock when the policy asks
for it (COMPLIANCE, `ledger_retention_days`), never updated or deleted, so
concurrent writers cannot lose an entry: a writer that loses the race for an attempt number
takes the next one. Reading lists the site's prefix; an unreadable entry makes the whole
ledger unreadable (fail closed: budgets are never checked against a partial ledger).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from components.common.create_only import ObjectExistsError, put_create_only
from components.privacy.ledger import LedgerEntry, LedgerError, next_attempt, site_prefix

if TYPE_CHECKING:
    from minio import Minio
    from minio.retention import Retention
    from minio.sse import Sse

MAX_ATTEMPT_RACES = 20


def ledger_retention_days(policy: Any) -> int | None:
    """Object-lock retention for ledger entries: the policy's `retention.days` when it sets
    `retention.object_lock` (its bucket has object lock), else None. Once written under
    COMPLIANCE retention an entry's version cannot be deleted or its retention shortened;
    the bucket's access rules deny deleting under `ledger/` at all (`pipelines.access`)."""
    if policy.retention.object_lock:
        return int(policy.retention.days)
    return None


class LedgerStore:
    """The ledger of `site_id` in `bucket` (the site's own bucket)."""

    def __init__(
        self,
        client: Minio,
        bucket: str,
        site_id: str,
        sse: Sse | None = None,
        retention_days: int | None = None,
    ) -> None:
        self.client = client
        self.bucket = bucket
        self.site_id = site_id
        self.sse = sse
        self.retention_days = retention_days

    def _require_object_lock(self) -> None:
        """LedgerError naming the bucket when it has no object lock (entries must be locked)."""
        from minio.error import S3Error

        try:
            self.client.get_object_lock_config(self.bucket)
        except S3Error as exc:
            raise LedgerError(
                f"site {self.site_id}: ledger entries go under object lock (policy "
                f"retention.object_lock), but bucket {self.bucket!r} has none ({exc.code}); "
                "create the bucket with object lock enabled"
            ) from None

    def _retention(self) -> Retention | None:
        """COMPLIANCE retention for a new entry (`retention_days` from now), or None."""
        if self.retention_days is None:
            return None
        import datetime as dt

        from minio.commonconfig import COMPLIANCE
        from minio.retention import Retention

        until = dt.datetime.now(dt.UTC).replace(microsecond=0)
        return Retention(COMPLIANCE, until + dt.timedelta(days=self.retention_days))

    def entries(self) -> list[LedgerEntry]:
        """Every entry of the site, across runs and rounds (sorted by key)."""
        from minio.error import S3Error

        out: list[LedgerEntry] = []
        prefix = site_prefix(self.site_id)
        try:
            names = sorted(
                o.object_name
                for o in self.client.list_objects(self.bucket, prefix=prefix, recursive=True)
                if o.object_name
            )
            for name in names:
                response = self.client.get_object(self.bucket, name)
                try:
                    data = response.read()
                finally:
                    response.close()
                    response.release_conn()
                entry = LedgerEntry.from_json(data, where=f"s3://{self.bucket}/{name}")
                if entry.site_id != self.site_id or entry.key != name:
                    raise LedgerError(
                        f"s3://{self.bucket}/{name}: entry names site {entry.site_id!r} and key "
                        f"{entry.key!r}; refusing a ledger with misplaced entries"
                    )
                out.append(entry)
        except S3Error as exc:
            raise LedgerError(
                f"site {self.site_id}: privacy ledger s3://{self.bucket}/{prefix} unreadable "
                f"({exc.code})"
            ) from None
        return out

    def charge(
        self, run_id: str, round_: int, make_entry: Callable[[int], LedgerEntry]
    ) -> LedgerEntry:
        """Write the entry `make_entry(attempt)` for the next free attempt number, create-only.

        Re-reads the ledger and retries with the next attempt when a concurrent writer took
        the number. Returns the entry written.
        """
        if self.retention_days is not None:
            self._require_object_lock()
        attempt = next_attempt(self.entries(), run_id, round_)
        for _ in range(MAX_ATTEMPT_RACES):
            entry = make_entry(attempt)
            try:
                put_create_only(
                    self.client,
                    self.bucket,
                    entry.key,
                    entry.to_json(),
                    content_type="application/json",
                    sse=self.sse,
                    retention=self._retention(),
                )
                return entry
            except ObjectExistsError:
                attempt = max(attempt + 1, next_attempt(self.entries(), run_id, round_))
        raise LedgerError(
            f"site {self.site_id}: could not claim a ledger attempt for run {run_id} round "
            f"{round_} after {MAX_ATTEMPT_RACES} tries (concurrent writers?)"
        )
