"""Publish global model versions to the coordinator's GCS bucket, never losing or overwriting one.

Layout in the bucket (per run):

* `models/<run>/v<version>/model.npz`, `optimizer.npz` (when the optimizer has state),
  `meta.json`: written create-only (`if_generation_match=0`); the create of `model.npz` is the
  claim on the version, so of two coordinators publishing the same version exactly one wins.
* `models/<run>/latest.json`: the pointer, replaced only with `if_generation_match=<generation
  read before the version was written>`; a pointer that moved meanwhile is a conflict, never
  overwritten.

A conflict raises `PublishConflictError` and removes what this call wrote (its own generations
only), so the bucket holds no partial version. The library's own retries could make a write
look like a conflict with itself; every object carries a per-call writer token in its metadata,
so such a "conflict" is recognised as our own success.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from components.common.tensors import sha256_hex

if TYPE_CHECKING:
    from google.cloud.storage import Blob, Bucket

WRITER_KEY = "fedpipe-writer"
SHA_KEY = "fedpipe-sha256"


class PublishConflictError(RuntimeError):
    """Another coordinator published first (or moved `latest`); nothing of ours was kept."""


class PublishError(RuntimeError):
    """The bucket holds something unreadable (a corrupt pointer, a hash mismatch)."""


def run_prefix(run_id: str) -> str:
    return f"models/{run_id}"


def version_prefix(run_id: str, version: int) -> str:
    """`models/<run>/v<version>` (the folder of one global model version)."""
    return f"{run_prefix(run_id)}/v{version}"


def latest_key(run_id: str) -> str:
    return f"{run_prefix(run_id)}/latest.json"


@dataclass(frozen=True)
class LatestPointer:
    """The `latest.json` of a run as read, with the generation a replacement must match."""

    version: int
    prefix: str
    model_sha256: str
    has_optimizer: bool
    generation: int
    body: dict[str, Any]


@dataclass(frozen=True)
class PublishPlan:
    """What a publish will write, fixed before any write: the latest generation it builds on."""

    run_id: str
    version: int
    parent_version: int
    expected_latest_generation: int  # 0 = no pointer yet
    writer: str


@dataclass(frozen=True)
class Published:
    """A version that is now `latest`."""

    version: int
    uri: str  # gs://bucket/models/<run>/v<version>
    model_generation: int
    latest_generation: int


def read_latest(bucket: Bucket, run_id: str, attempts: int = 3) -> LatestPointer | None:
    """The run's latest pointer, or None when nothing was published for `run_id` yet.

    Body and generation are read as one (the download is conditional on the generation the
    metadata read saw); a pointer replaced in between is read again, up to `attempts` times.
    """
    from google.api_core.exceptions import NotFound, PreconditionFailed

    for attempt in range(attempts):
        blob = bucket.get_blob(latest_key(run_id))
        if blob is None:
            return None
        try:
            data = blob.download_as_bytes(if_generation_match=blob.generation)
            break
        except (PreconditionFailed, NotFound):
            if attempt == attempts - 1:
                raise PublishConflictError(
                    f"gs://{bucket.name}/{latest_key(run_id)} kept changing while being read"
                ) from None
    try:
        body = json.loads(data)
        return LatestPointer(
            version=int(body["version"]),
            prefix=str(body["prefix"]),
            model_sha256=str(body["model_sha256"]),
            has_optimizer=bool(body["has_optimizer"]),
            generation=int(blob.generation),
            body=body,
        )
    except (ValueError, KeyError, TypeError) as exc:
        raise PublishError(f"gs://{bucket.name}/{latest_key(run_id)}: bad pointer: {exc}") from exc


def plan_publish(bucket: Bucket, *, run_id: str, version: int, parent_version: int) -> PublishPlan:
    """Read `latest` and check that it is the parent this version builds on.

    parent_version 0 = the seeded initial model (never published), valid only while the run
    has no pointer. Raises PublishConflictError when `latest` is elsewhere.
    """
    if version != parent_version + 1:
        raise ValueError(f"version {version} does not follow parent version {parent_version}")
    latest = read_latest(bucket, run_id)
    current = latest.version if latest is not None else 0
    if current != parent_version:
        raise PublishConflictError(
            f"gs://{bucket.name}/{latest_key(run_id)} is at version {current}, but this round "
            f"builds on version {parent_version}: another coordinator has published; "
            f"nothing written (resume from latest to continue)"
        )
    return PublishPlan(
        run_id=run_id,
        version=version,
        parent_version=parent_version,
        expected_latest_generation=latest.generation if latest is not None else 0,
        writer=uuid.uuid4().hex,
    )


def _create(bucket: Bucket, name: str, data: bytes, content_type: str, writer: str) -> Blob:
    """Create-only upload; returns the blob (with its generation) or raises conflict."""
    from google.api_core.exceptions import PreconditionFailed

    blob = bucket.blob(name)
    blob.metadata = {WRITER_KEY: writer, SHA_KEY: sha256_hex(data)}
    try:
        blob.upload_from_string(data, content_type=content_type, if_generation_match=0)
        return blob
    except PreconditionFailed as exc:
        existing = bucket.get_blob(name)
        if existing is not None and (existing.metadata or {}).get(WRITER_KEY) == writer:
            return existing  # our own write, retried by the library
        raise PublishConflictError(
            f"gs://{bucket.name}/{name} already exists (generation "
            f"{existing.generation if existing else '?'}, another writer): "
            f"version not published, nothing overwritten"
        ) from exc


def _remove(bucket: Bucket, blobs: list[Blob]) -> None:
    """Delete exactly the generations this call created (best effort)."""
    from google.api_core.exceptions import GoogleAPIError

    for blob in blobs:
        try:
            bucket.delete_blob(blob.name, generation=blob.generation)
        except GoogleAPIError:
            pass


def commit_publish(
    bucket: Bucket,
    plan: PublishPlan,
    *,
    model_bytes: bytes,
    optimizer_bytes: bytes | None,
    meta: Mapping[str, Any],
) -> Published:
    """Write the version create-only, then move `latest` from the planned generation.

    Raises PublishConflictError (after removing its own objects) when the version exists or
    `latest` moved since `plan_publish`.
    """
    from google.api_core.exceptions import PreconditionFailed

    prefix = version_prefix(plan.run_id, plan.version)
    model_sha = sha256_hex(model_bytes)
    written: list[Blob] = []
    try:
        model_blob = _create(
            bucket, f"{prefix}/model.npz", model_bytes, "application/octet-stream", plan.writer
        )
        written.append(model_blob)
        if optimizer_bytes is not None:
            written.append(
                _create(
                    bucket,
                    f"{prefix}/optimizer.npz",
                    optimizer_bytes,
                    "application/octet-stream",
                    plan.writer,
                )
            )
        meta_bytes = json.dumps(dict(meta), sort_keys=True, indent=1).encode()
        written.append(
            _create(bucket, f"{prefix}/meta.json", meta_bytes, "application/json", plan.writer)
        )
    except PublishConflictError:
        # the first create failed: `written` is empty; a later one: remove ours
        _remove(bucket, written)
        raise
    pointer = {
        "run_id": plan.run_id,
        "version": plan.version,
        "parent": plan.parent_version,
        "prefix": prefix,
        "model_sha256": model_sha,
        "model_generation": int(model_blob.generation),
        "has_optimizer": optimizer_bytes is not None,
        "writer": plan.writer,
    }
    latest = bucket.blob(latest_key(plan.run_id))
    latest.metadata = {WRITER_KEY: plan.writer}
    try:
        latest.upload_from_string(
            json.dumps(pointer, sort_keys=True, indent=1).encode(),
            content_type="application/json",
            if_generation_match=plan.expected_latest_generation,
        )
    except PreconditionFailed as exc:
        current = bucket.get_blob(latest_key(plan.run_id))
        if current is None or (current.metadata or {}).get(WRITER_KEY) != plan.writer:
            _remove(bucket, written)
            raise PublishConflictError(
                f"gs://{bucket.name}/{latest_key(plan.run_id)} moved since it was read "
                f"(expected generation {plan.expected_latest_generation}, now "
                f"{current.generation if current else 'deleted'}): version {plan.version} "
                f"withdrawn, the pointer left as the other writer set it"
            ) from exc
        latest = current
    return Published(
        version=plan.version,
        uri=f"gs://{bucket.name}/{prefix}",
        model_generation=int(model_blob.generation),
        latest_generation=int(latest.generation),
    )


def publish_version(
    bucket: Bucket,
    *,
    run_id: str,
    version: int,
    parent_version: int,
    model_bytes: bytes,
    optimizer_bytes: bytes | None,
    meta: Mapping[str, Any],
) -> Published:
    """`plan_publish` then `commit_publish`: the one call the aggregate executor makes."""
    plan = plan_publish(bucket, run_id=run_id, version=version, parent_version=parent_version)
    return commit_publish(
        bucket, plan, model_bytes=model_bytes, optimizer_bytes=optimizer_bytes, meta=meta
    )


@dataclass(frozen=True)
class LatestVersion:
    """A published version read back (for resume)."""

    pointer: LatestPointer
    model_bytes: bytes
    optimizer_bytes: bytes | None
    meta: dict[str, Any]


def load_latest(bucket: Bucket, run_id: str) -> LatestVersion | None:
    """Download the version `latest` points at, checking the model's sha256; None if none."""
    pointer = read_latest(bucket, run_id)
    if pointer is None:
        return None

    def get(name: str) -> bytes:
        blob = bucket.get_blob(f"{pointer.prefix}/{name}")
        if blob is None:
            raise PublishError(
                f"gs://{bucket.name}/{pointer.prefix}/{name} missing (latest points at it)"
            )
        return blob.download_as_bytes(if_generation_match=blob.generation)

    model_bytes = get("model.npz")
    if sha256_hex(model_bytes) != pointer.model_sha256:
        raise PublishError(
            f"gs://{bucket.name}/{pointer.prefix}/model.npz: sha256 differs from latest.json"
        )
    optimizer_bytes = get("optimizer.npz") if pointer.has_optimizer else None
    try:
        meta = json.loads(get("meta.json"))
    except ValueError as exc:
        raise PublishError(f"gs://{bucket.name}/{pointer.prefix}/meta.json: {exc}") from exc
    return LatestVersion(pointer, model_bytes, optimizer_bytes, meta)
