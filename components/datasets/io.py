"""Read and write a site's CSV tables: `s3://bucket/key` via the `minio` SDK, or `file://` paths.

The I/O edge of the datasets package. Errors are `DataError`s naming the site and the check
("uri", "readable", "not_empty", "csv"), never a library traceback; messages carry no cell
values.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlparse

import pandas as pd

from components.datasets.features import DataError
from components.domain.models import Site

if TYPE_CHECKING:
    from minio import Minio

ClientFactory = Callable[[], "Minio"]


@dataclass(frozen=True)
class TableUri:
    """A parsed table location: scheme "s3" (bucket, key) or "file" (path in `key`)."""

    scheme: str
    bucket: str
    key: str


def parse_uri(uri: str, site_id: str) -> TableUri:
    """`s3://bucket/key` or `file:///abs/path`; DataError (check "uri") otherwise."""
    parsed = urlparse(uri)
    if parsed.scheme == "s3":
        key = parsed.path.lstrip("/")
        if not parsed.netloc or not key:
            raise DataError(site_id, "uri", f"{uri!r} is not s3://<bucket>/<key>")
        return TableUri("s3", parsed.netloc, key)
    if parsed.scheme == "file":
        path = unquote(parsed.netloc + parsed.path)
        if not path:
            raise DataError(site_id, "uri", f"{uri!r} has no path")
        return TableUri("file", "", path)
    raise DataError(site_id, "uri", f"{uri!r}: unsupported scheme (use s3:// or file://)")


def site_client_factory(site: Site) -> ClientFactory:
    """A factory of `minio.Minio` clients for `site`.

    Delegates to `components.common.object_store.site_minio_client`: endpoint via
    `object_store_endpoint` (FEDPIPE_ENDPOINT_OVERRIDES; an override is plain HTTP unless it
    says https://), credentials from the site's S3_ACCESS_KEY / S3_SECRET_KEY secrets. Called
    lazily, so a missing secret surfaces as `MissingSecretError` at read time.
    """

    def factory() -> Minio:
        from components.common.object_store import site_minio_client

        return site_minio_client(site)

    return factory


def read_bytes(uri: str, client_factory: ClientFactory | None, site_id: str) -> bytes:
    """The object/file at `uri`; DataError (check "readable") when it cannot be read."""
    loc = parse_uri(uri, site_id)
    if loc.scheme == "file":
        try:
            return Path(loc.key).read_bytes()
        except OSError as exc:
            reason = exc.strerror or type(exc).__name__
            raise DataError(site_id, "readable", f"cannot read {uri}: {reason}") from None
    if client_factory is None:
        raise DataError(site_id, "readable", f"cannot read {uri}: no object-store client given")
    from minio.error import MinioException, S3Error
    from urllib3.exceptions import HTTPError as Urllib3Error

    response = None
    try:
        client = client_factory()
        response = client.get_object(loc.bucket, loc.key)
        return response.read()
    except S3Error as exc:
        raise DataError(site_id, "readable", f"cannot read {uri}: {exc.code}") from None
    except (MinioException, Urllib3Error, OSError, ValueError) as exc:
        # urllib3: connection refused / retries exhausted; ValueError: a malformed endpoint.
        raise DataError(
            site_id, "readable", f"cannot read {uri}: {type(exc).__name__} (endpoint unreachable?)"
        ) from None
    finally:
        if response is not None:
            response.close()
            response.release_conn()


def parse_csv(data: bytes, uri: str, site_id: str) -> pd.DataFrame:
    """A CSV table with header; DataError for an empty or unparseable file."""
    if not data.strip():
        raise DataError(site_id, "not_empty", f"{uri} is empty")
    try:
        return pd.read_csv(io.BytesIO(data))
    except pd.errors.EmptyDataError:
        raise DataError(site_id, "not_empty", f"{uri} has no header or rows") from None
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as exc:
        raise DataError(
            site_id, "csv", f"{uri} is not a readable CSV ({type(exc).__name__})"
        ) from None


def read_site_table(uri: str, client_factory: ClientFactory | None, site_id: str) -> pd.DataFrame:
    """Read the site's CSV table at `uri` (s3:// through `client_factory()`, or file://)."""
    return parse_csv(read_bytes(uri, client_factory, site_id), uri, site_id)


def write_site_table(
    data: bytes, uri: str, client_factory: ClientFactory | None, site_id: str
) -> None:
    """Put CSV bytes at `uri` (local runs and tests seed a site's bucket with this)."""
    loc = parse_uri(uri, site_id)
    if loc.scheme == "file":
        path = Path(loc.key)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        return
    if client_factory is None:
        raise DataError(site_id, "writable", f"cannot write {uri}: no object-store client given")
    client = client_factory()
    client.put_object(loc.bucket, loc.key, io.BytesIO(data), len(data), content_type="text/csv")
