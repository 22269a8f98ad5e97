"""Create-only object writes to an S3-compatible store with the `minio` SDK.

`put_create_only` sends a conditional PutObject with `If-None-Match: *`: the server refuses it
(HTTP 412 PreconditionFailed) when the key already exists, so two writers can never both
succeed and an existing object is never overwritten. MinIO and AWS S3 honour this header;
so does the SeaweedFS server the tests use (checked in `tests/export`). minio 7.2's public
`put_object` cannot send it (unknown headers become `X-Amz-Meta-*`), so this module calls the
SDK's single-part `_put_object` with headers built by the SDK's own `genheaders` (SSE,
retention). Objects here are small (model updates, ledger entries): single part only.

A `Content-MD5` header is always sent: integrity on the wire, and required by S3 for puts
into a bucket with a default object-lock rule.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from minio import Minio
    from minio.retention import Retention
    from minio.sse import Sse


def _store_errors() -> tuple[type[BaseException], ...]:
    from minio.error import MinioException
    from urllib3.exceptions import HTTPError

    # MinioException: S3Error and server errors; urllib3 HTTPError: MaxRetryError and other
    # connection failures; OSError: socket errors that escape urllib3.
    return (MinioException, HTTPError, OSError)


STORE_ERRORS: tuple[type[BaseException], ...] = _store_errors()
"""What a failed request to the object store raises (for `except STORE_ERRORS`)."""

MAX_SINGLE_PUT = 5 * 1024**3  # S3's single PutObject limit (bytes)
_EXISTS_CODES = {"PreconditionFailed", "ConditionalRequestConflict"}


class ObjectExistsError(FileExistsError):
    """The key already exists (or a concurrent writer won): nothing was written."""


@dataclass(frozen=True)
class WriteResult:
    """What the server answered: etag, version id (versioned buckets) and response headers."""

    bucket: str
    key: str
    etag: str
    version_id: str | None
    headers: dict[str, str]


def put_create_only(
    client: Minio,
    bucket: str,
    key: str,
    data: bytes,
    *,
    content_type: str = "application/octet-stream",
    sse: Sse | None = None,
    retention: Retention | None = None,
    metadata: dict[str, str] | None = None,
) -> WriteResult:
    """Write `data` at `key` only if no object is there; ObjectExistsError otherwise."""
    from minio.error import S3Error
    from minio.helpers import check_bucket_name, check_object_name, genheaders

    check_bucket_name(bucket)
    check_object_name(key)
    if len(data) > MAX_SINGLE_PUT:
        raise ValueError(f"{bucket}/{key}: {len(data)} bytes exceed a single create-only put")
    headers = genheaders(metadata, sse, None, retention, False)
    headers["Content-Type"] = content_type
    headers["Content-MD5"] = base64.b64encode(hashlib.md5(data).digest()).decode()
    headers["If-None-Match"] = "*"
    try:
        result = client._put_object(bucket, key, data, headers)
    except S3Error as exc:
        if exc.code in _EXISTS_CODES:
            raise ObjectExistsError(
                f"s3://{bucket}/{key} already exists: refused to overwrite it"
            ) from None
        raise
    return WriteResult(
        bucket=bucket,
        key=key,
        etag=result.etag,
        version_id=result.version_id,
        headers={k.lower(): v for k, v in dict(result.http_headers or {}).items()},
    )


def object_exists(client: Minio, bucket: str, key: str) -> bool:
    """True when `key` exists (stat succeeds), False on NoSuchKey; other errors propagate."""
    from minio.error import S3Error

    try:
        client.stat_object(bucket, key)
    except S3Error as exc:
        if exc.code in _MISSING_CODES:
            return False
        raise
    return True


_MISSING_CODES = {"NoSuchKey", "NoSuchObject", "NotFound"}


class ObjectTooLargeError(ValueError):
    """An object is larger than its reader accepts: refused whole, not cut off at the limit."""

    def __init__(self, bucket: str, key: str, size: int | None, limit: int) -> None:
        self.bucket, self.key, self.size, self.limit = bucket, key, size, limit
        held = f"{size} bytes" if size is not None else f"more than {limit} bytes"
        super().__init__(
            f"s3://{bucket}/{key} is {held}, above the {limit}-byte limit for this object: "
            "it is not what belongs there; find what wrote it and replace it (nothing of it "
            "was used)"
        )


def read_or_none(client: Minio, bucket: str, key: str, limit: int | None = None) -> bytes | None:
    """The object's bytes, None when `key` does not exist; ObjectTooLargeError (naming the
    object, its size and `limit`) when it holds more than `limit` bytes; other errors
    propagate."""
    from minio.error import S3Error

    try:
        response = client.get_object(bucket, key)
    except S3Error as exc:
        if exc.code in _MISSING_CODES:
            return None
        raise
    try:
        if limit is None:
            return response.read()
        declared = str((response.headers or {}).get("Content-Length") or "")
        if declared.isdigit() and int(declared) > limit:
            raise ObjectTooLargeError(bucket, key, int(declared), limit)
        data = response.read(limit + 1)  # one byte more: a longer body is refused, not cut
        if len(data) > limit:
            raise ObjectTooLargeError(bucket, key, None, limit)
        return data
    finally:
        response.close()
        response.release_conn()


def remove_if_ours(client: Minio, written: WriteResult) -> bool:
    """Delete an object this process wrote, and only if it is still that object.

    Versioned bucket: deletes exactly our version. Unversioned: deletes only when the current
    etag is still ours. Returns True when something was removed.
    """
    from minio.error import S3Error

    try:
        if written.version_id:
            client.remove_object(written.bucket, written.key, version_id=written.version_id)
            return True
        current = client.stat_object(written.bucket, written.key)
    except S3Error as exc:
        if exc.code in {"NoSuchKey", "NoSuchObject", "NotFound", "NoSuchVersion"}:
            return False
        raise
    if (current.etag or "").strip('"') != written.etag.strip('"'):
        return False
    client.remove_object(written.bucket, written.key)
    return True


def sse_for_policy(policy: Any, site_id: str) -> Sse | None:
    """The SSE request for `policy.encryption.at_rest`: `SseS3()` for sse-s3, `SseKMS` with the
    key id from the site's `SSE_KMS_KEY_ID` secret for sse-kms, None for none."""
    from minio.sse import SseKMS, SseS3

    from components.common.secrets import site_secret

    at_rest = policy.encryption.at_rest
    if at_rest == "sse-s3":
        return SseS3()
    if at_rest == "sse-kms":
        return SseKMS(site_secret(site_id, "SSE_KMS_KEY_ID"), {})
    return None
