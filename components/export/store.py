"""Write a signed update create-only to the site's bucket, all or nothing (the I/O edge).

Order: (1) refuse if either key exists (stat) and, when the policy wants object lock, if the
bucket has no object lock; (2) put the tensors, then the manifest, each with
`If-None-Match: *` (`components.common.create_only`), SSE requested; (3) read both back and
verify hash and signature with the function aggregation uses; (4) only then set object-lock
retention (COMPLIANCE, `retention.days`) on both exact versions. If any step after the first
put fails, this attempt removes what *it* wrote (its own version / etag) and re-raises: no
partial update stays visible, and an object someone else wrote is never touched. Retention
is set last because a locked object cannot be removed; an update is complete and verified
before it becomes undeletable.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from components.common.create_only import (
    ObjectExistsError,
    WriteResult,
    object_exists,
    put_create_only,
    remove_if_ours,
)
from components.common.manifest import SignedManifest, verify_manifest
from components.domain.canonical import sha256_hex
from components.export.update import Destination, ExportError

if TYPE_CHECKING:
    from minio import Minio
    from minio.sse import Sse


class ExportExistsError(ObjectExistsError):
    """An update for this (run, round, site) is already in the bucket; it was left intact."""


@dataclass(frozen=True)
class Published:
    """The two objects written: server answers (version ids, SSE header) and retention."""

    tensors: WriteResult
    manifest: WriteResult
    retain_until: str | None


def _read(client: Minio, bucket: str, key: str) -> bytes:
    response = client.get_object(bucket, key)
    try:
        return response.read()
    finally:
        response.close()
        response.release_conn()


def _require_object_lock(client: Minio, bucket: str, site_id: str, policy_id: str) -> None:
    from minio.error import S3Error

    try:
        client.get_object_lock_config(bucket)
    except S3Error as exc:
        raise ExportError(
            f"site {site_id}: policy {policy_id} retention.object_lock requires object lock, "
            f"but bucket {bucket!r} has none ({exc.code}); create it with object lock enabled"
        ) from None


def publish_update(
    client: Minio,
    dest: Destination,
    *,
    payload: bytes,
    signed: SignedManifest,
    public_key_pem: str,
    site_id: str,
    run_id: str,
    round_: int,
    sse: Sse | None,
    retention_days: int | None,
    policy_id: str,
    now: dt.datetime | None = None,
) -> Published:
    """Publish tensors + manifest create-only (see module doc); ExportExistsError if present."""
    from minio.commonconfig import COMPLIANCE
    from minio.retention import Retention

    for key in (dest.tensors_key, dest.manifest_key):
        if object_exists(client, dest.bucket, key):
            raise ExportExistsError(
                f"site {site_id}: s3://{dest.bucket}/{key} already exists: an update for run "
                f"{run_id} round {round_} was exported before; refused, the object is unchanged"
            )
    if retention_days is not None:
        _require_object_lock(client, dest.bucket, site_id, policy_id)

    written: list[WriteResult] = []
    try:
        try:
            written.append(put_create_only(client, dest.bucket, dest.tensors_key, payload, sse=sse))
            written.append(
                put_create_only(
                    client,
                    dest.bucket,
                    dest.manifest_key,
                    signed.to_json(),
                    content_type="application/json",
                    sse=sse,
                )
            )
        except ObjectExistsError as exc:
            raise ExportExistsError(
                f"site {site_id}: {exc} (a concurrent export of run {run_id} round {round_})"
            ) from None
        # Read back what the server holds and verify it as aggregation will.
        stored = _read(client, dest.bucket, dest.tensors_key)
        back = SignedManifest.from_json(_read(client, dest.bucket, dest.manifest_key))
        verify_manifest(
            back,
            public_key_pem=public_key_pem,
            expected_site_id=site_id,
            expected_run_id=run_id,
            expected_round=round_,
            content_sha256=sha256_hex(stored),
        )
        retain_until = None
        if retention_days is not None:
            until = (now or dt.datetime.now(dt.UTC)).replace(microsecond=0)
            until += dt.timedelta(days=retention_days)
            for w in written:
                client.set_object_retention(
                    w.bucket, w.key, Retention(COMPLIANCE, until), version_id=w.version_id
                )
            retain_until = until.isoformat()
    except BaseException:
        for w in reversed(written):
            try:
                remove_if_ours(client, w)
            except Exception:  # best effort; the original error is what matters
                pass
        raise
    return Published(tensors=written[0], manifest=written[1], retain_until=retain_until)


def describe(published: Published) -> dict[str, Any]:
    """What ref.json records about the stored objects (version ids, SSE, retention)."""
    return {
        "tensors_version_id": published.tensors.version_id,
        "manifest_version_id": published.manifest.version_id,
        "server_side_encryption": published.tensors.headers.get("x-amz-server-side-encryption"),
        "retain_until": published.retain_until,
    }
