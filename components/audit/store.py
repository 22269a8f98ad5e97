"""Audit chains in object stores, written create-only (the I/O edge of `components.audit`).

Layout in the chain owner's bucket: `audit/<run>/<chain>/records/<seq:08d>.json` and
`audit/<run>/<chain>/checkpoints/<count:08d>.json` (a site's chain `site/<id>` in its own
bucket, the coordinator's in its GCS bucket). Every object is written create-only
(S3: `If-None-Match: *` via `components.common.create_only`; GCS: `if_generation_match=0`),
so record n can be written once: a second writer for the same position fails instead of
replacing it. Under the bucket's object-lock rule (S3) or retention policy (GCS) the
objects cannot be deleted either; the verifier does not rely on that.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from components.audit.records import Checkpoint, Record, append, checkpoint
from components.audit.verify import Chain

ROOT = "audit"


class ChainExistsError(FileExistsError):
    """Another writer already wrote this record position."""


class ObjectStore(Protocol):
    """What the chain needs from a bucket."""

    def put_new(self, key: str, data: bytes) -> None: ...  # ChainExistsError if present

    def get(self, key: str) -> bytes: ...

    def keys(self, prefix: str) -> list[str]: ...  # sorted


def chain_prefix(run_id: str, chain: str) -> str:
    if not run_id or "/" in run_id or run_id in (".", ".."):
        raise ValueError(f"audit: run id {run_id!r} must be a non-empty name without '/'")
    return f"{ROOT}/{run_id}/{chain}/"


def record_key(run_id: str, chain: str, seq: int) -> str:
    return f"{chain_prefix(run_id, chain)}records/{seq:08d}.json"


def checkpoint_key(run_id: str, chain: str, count: int) -> str:
    return f"{chain_prefix(run_id, chain)}checkpoints/{count:08d}.json"


def read_chain(store: ObjectStore, run_id: str, chain: str, public_pem: str) -> Chain:
    """Records in key order and checkpoints, as stored (the verifier judges them)."""
    prefix = chain_prefix(run_id, chain)
    records = [Record.from_json(store.get(k)) for k in store.keys(prefix + "records/")]
    checkpoints = [Checkpoint.from_json(store.get(k)) for k in store.keys(prefix + "checkpoints/")]
    return Chain(chain, records, checkpoints, public_pem)


@dataclass
class ChainWriter:
    """Appends signed records to one chain and checkpoints it every `checkpoint_every`
    records. `now` gives the ISO 8601 UTC time (passed in: the edge owns the clock)."""

    store: ObjectStore
    run_id: str
    chain: str
    private_pem: str
    now: Callable[[], str]
    checkpoint_every: int = 10

    def append(self, kind: str, body: dict[str, Any], refs: list[str] | None = None) -> Record:
        """Write the next record after the stored head; ChainExistsError when another writer
        took that position first (nothing of ours written)."""
        prefix = chain_prefix(self.run_id, self.chain)
        keys = self.store.keys(prefix + "records/")
        head = Record.from_json(self.store.get(keys[-1])) if keys else None
        record = append(head, self.chain, kind, body, self.private_pem, self.now(), refs)
        self.store.put_new(record_key(self.run_id, self.chain, record.seq), record.to_json())
        if (record.seq + 1) % self.checkpoint_every == 0:
            self.checkpoint()
        return record

    def checkpoint(self) -> Checkpoint:
        """Sign and store (chain, count, head) of the chain as stored now."""
        prefix = chain_prefix(self.run_id, self.chain)
        records = [
            Record.from_json(self.store.get(k)) for k in self.store.keys(prefix + "records/")
        ]
        cp = checkpoint(records, self.private_pem, self.now())
        self.store.put_new(checkpoint_key(self.run_id, self.chain, cp.count), cp.to_json())
        return cp


class S3Store:
    """A bucket of an S3-compatible store through a `minio.Minio` client."""

    def __init__(self, client: Any, bucket: str, sse: Any = None) -> None:
        self.client, self.bucket, self.sse = client, bucket, sse

    def put_new(self, key: str, data: bytes) -> None:
        from components.common.create_only import ObjectExistsError, put_create_only

        try:
            put_create_only(
                self.client, self.bucket, key, data, content_type="application/json", sse=self.sse
            )
        except ObjectExistsError as exc:
            raise ChainExistsError(str(exc)) from None

    def get(self, key: str) -> bytes:
        response = self.client.get_object(self.bucket, key)
        try:
            return response.read()
        finally:
            response.close()
            response.release_conn()

    def keys(self, prefix: str) -> list[str]:
        objects = self.client.list_objects(self.bucket, prefix=prefix, recursive=True)
        return sorted(o.object_name for o in objects)


class GcsStore:
    """A `google.cloud.storage` bucket."""

    def __init__(self, bucket: Any) -> None:
        self.bucket = bucket

    def put_new(self, key: str, data: bytes) -> None:
        from google.api_core.exceptions import PreconditionFailed

        try:
            self.bucket.blob(key).upload_from_string(
                data, content_type="application/json", if_generation_match=0
            )
        except PreconditionFailed:
            raise ChainExistsError(f"gs://{self.bucket.name}/{key} already exists") from None

    def get(self, key: str) -> bytes:
        return self.bucket.blob(key).download_as_bytes()

    def keys(self, prefix: str) -> list[str]:
        return sorted(b.name for b in self.bucket.client.list_blobs(self.bucket, prefix=prefix))


class DirStore:
    """A read-only bucket mirror on disk (`<root>/<key>`, e.g. a local run's saved state)."""

    def __init__(self, root: Any) -> None:
        from pathlib import Path

        self.root = Path(root)

    def put_new(self, key: str, data: bytes) -> None:
        raise PermissionError(f"{self.root}: a bucket mirror is read-only")

    def get(self, key: str) -> bytes:
        return (self.root / key).read_bytes()

    def keys(self, prefix: str) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(
            k
            for k in (
                p.relative_to(self.root).as_posix() for p in self.root.rglob("*") if p.is_file()
            )
            if k.startswith(prefix)
        )
