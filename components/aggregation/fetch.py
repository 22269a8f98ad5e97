"""Read one site's exported update (`<key>.npz` + `<key>.manifest.json`) from its bucket (I/O edge).

The size limit is enforced twice: on the object's stat (nothing downloaded when too big) and
while reading (never more than limit + 1 bytes held), so an object swapped after the stat
cannot blow up memory either.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from components.aggregation.verify import MAX_MANIFEST_BYTES, UpdateRejected
from components.common.artifact_files import MANIFEST_SUFFIX, TENSORS_SUFFIX

if TYPE_CHECKING:
    from minio import Minio


@dataclass(frozen=True)
class RawUpdate:
    """The two objects of one update, as bytes (not yet verified)."""

    npz_bytes: bytes
    manifest_bytes: bytes


def _read_limited(client: Minio, site_id: str, bucket: str, name: str, max_bytes: int) -> bytes:
    from minio.error import S3Error

    try:
        stat = client.stat_object(bucket, name)
    except S3Error as exc:
        if exc.code in {"NoSuchKey", "NoSuchBucket", "NoSuchObject"}:
            raise UpdateRejected(site_id, f"s3://{bucket}/{name} not found ({exc.code})") from exc
        raise UpdateRejected(site_id, f"s3://{bucket}/{name}: read refused ({exc.code})") from exc
    if stat.size is not None and stat.size > max_bytes:
        raise UpdateRejected(
            site_id, f"oversize: s3://{bucket}/{name} is {stat.size} bytes > limit {max_bytes}"
        )
    response = client.get_object(bucket, name)
    try:
        data = response.read(max_bytes + 1)
    finally:
        response.close()
        response.release_conn()
    if len(data) > max_bytes:
        raise UpdateRejected(
            site_id, f"oversize: s3://{bucket}/{name} exceeds limit {max_bytes} bytes"
        )
    return data


def fetch_update(
    client: Minio,
    *,
    site_id: str,
    bucket: str,
    key: str,
    max_bytes: int,
    suffix: str = TENSORS_SUFFIX,
) -> RawUpdate:
    """Download `<key><suffix>` (`.npz`, or `.ckks` for an encrypted update; at most
    `max_bytes`) and `<key>.manifest.json` from `bucket`.

    Raises `UpdateRejected` for a missing, oversize or unreadable object and when the store is
    unreachable (the round goes on without the site if the quorum still holds).
    """
    from urllib3.exceptions import HTTPError

    try:
        manifest = _read_limited(client, site_id, bucket, key + MANIFEST_SUFFIX, MAX_MANIFEST_BYTES)
        npz = _read_limited(client, site_id, bucket, key + suffix, max_bytes)
    except (HTTPError, OSError) as exc:
        raise UpdateRejected(site_id, f"object store unreachable: {type(exc).__name__}") from exc
    return RawUpdate(npz, manifest)
