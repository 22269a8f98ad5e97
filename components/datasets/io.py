"""Read and write a site's tables: `s3://bucket/key` via the `minio` SDK, or `file://` paths.

The format follows the URI's suffix: `.csv` (header row) or `.parquet`/`.pq` (pyarrow). A
Parquet file's column types are checked against the data contract before anything else reads
it (`parquet_type_problems`): a file written with another schema is refused naming each
column, its Parquet type and the contract's type.

The I/O edge of the datasets package. Errors are `DataError`s naming the site and the check
("uri", "readable", "not_empty", "csv", "parquet", "parquet_schema", "format"), never a
library traceback; messages carry no cell values.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlparse

import pandas as pd

from components.datasets.features import DataError
from components.domain.contract import DataContract
from components.domain.models import Site

if TYPE_CHECKING:
    from minio import Minio

ClientFactory = Callable[[], "Minio"]

CSV_SUFFIXES = (".csv",)
PARQUET_SUFFIXES = (".parquet", ".pq")


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


def table_format(uri: str, site_id: str) -> str:
    """ "csv" or "parquet" from the URI's suffix; DataError (check "format") otherwise."""
    path = urlparse(uri).path.lower()
    if path.endswith(CSV_SUFFIXES):
        return "csv"
    if path.endswith(PARQUET_SUFFIXES):
        return "parquet"
    raise DataError(
        site_id, "format", f"{uri}: unknown table format (name it *.csv, *.parquet or *.pq)"
    )


def _arrow_kind(arrow_type: Any) -> str:
    """The contract type family of a pyarrow type: float, int, bool, string or other."""
    import pyarrow.types as pat

    if pat.is_dictionary(arrow_type):
        return _arrow_kind(arrow_type.value_type)
    if pat.is_floating(arrow_type):
        return "float"
    if pat.is_integer(arrow_type):
        return "int"
    if pat.is_boolean(arrow_type):
        return "bool"
    if pat.is_string(arrow_type) or pat.is_large_string(arrow_type):
        return "string"
    if pat.is_null(arrow_type):
        return "null"  # a column with only empty cells
    return "other"


def _accepted_kinds(contract: DataContract, column: str) -> tuple[str, ...]:
    if column == contract.label:
        return ("float", "int") if contract.is_regression else ("int",)
    spec = next(c for c in contract.columns if c.name == column)
    if spec.type == "float":
        return ("float", "int")
    if spec.type == "int":
        return ("int", "float") if spec.nullable else ("int",)
    if spec.type == "bool":
        return ("bool",)
    if all(isinstance(c, int) for c in spec.categories or []):
        return ("int",)
    return ("string",)


def parquet_type_problems(contract: DataContract, schema: Any) -> list[str]:
    """Readable problems of a Parquet schema (pyarrow.Schema) against the contract: missing
    and extra columns, and each column whose Parquet type the contract's type does not take."""
    names = list(schema.names)
    problems = [f"missing column {c}" for c in contract.table_columns if c not in names]
    problems += [f"extra column {c}" for c in names if c not in contract.table_columns]
    for name in contract.table_columns:
        if name not in names:
            continue
        arrow_type = schema.field(name).type
        kind = _arrow_kind(arrow_type)
        accepted = _accepted_kinds(contract, name)
        if kind == "null" or kind in accepted:
            continue
        wanted = "int" if accepted == ("int",) else "/".join(accepted)
        problems.append(f"column {name}: Parquet type {arrow_type}, the contract needs {wanted}")
    return problems


def parse_parquet(
    data: bytes, uri: str, site_id: str, contract: DataContract | None = None
) -> pd.DataFrame:
    """A Parquet table; with `contract`, its schema is checked first (DataError check
    "parquet_schema" listing every problem)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    if not data:
        raise DataError(site_id, "not_empty", f"{uri} is empty")
    try:
        parquet = pq.ParquetFile(io.BytesIO(data))
        schema = parquet.schema_arrow
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise DataError(
            site_id, "parquet", f"{uri} is not a readable Parquet file ({type(exc).__name__})"
        ) from None
    if contract is not None:
        problems = parquet_type_problems(contract, schema)
        if problems:
            shown = "; ".join(problems[:8]) + (
                f" (+{len(problems) - 8} more)" if len(problems) > 8 else ""
            )
            raise DataError(site_id, "parquet_schema", f"{uri}: {shown}")
    try:
        frame = parquet.read().to_pandas()
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise DataError(
            site_id, "parquet", f"{uri} is not a readable Parquet file ({type(exc).__name__})"
        ) from None
    if len(frame) == 0:
        raise DataError(site_id, "not_empty", f"{uri} has no rows")
    return frame


def read_site_table(
    uri: str,
    client_factory: ClientFactory | None,
    site_id: str,
    contract: DataContract | None = None,
) -> pd.DataFrame:
    """Read the site's table at `uri` (s3:// through `client_factory()`, or file://), CSV or
    Parquet by suffix; a Parquet schema is checked against `contract` when given."""
    kind = table_format(uri, site_id)
    data = read_bytes(uri, client_factory, site_id)
    if kind == "parquet":
        return parse_parquet(data, uri, site_id, contract)
    return parse_csv(data, uri, site_id)


def table_to_parquet_bytes(frame: pd.DataFrame) -> bytes:
    """A frame as Parquet bytes (no index)."""
    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False, engine="pyarrow")
    return buffer.getvalue()


def write_site_table(
    data: bytes, uri: str, client_factory: ClientFactory | None, site_id: str
) -> None:
    """Put table bytes at `uri` (local runs and tests seed a site's bucket with this)."""
    loc = parse_uri(uri, site_id)
    if loc.scheme == "file":
        path = Path(loc.key)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        return
    if client_factory is None:
        raise DataError(site_id, "writable", f"cannot write {uri}: no object-store client given")
    client = client_factory()
    content_type = (
        "text/csv" if loc.key.lower().endswith(CSV_SUFFIXES) else "application/octet-stream"
    )
    client.put_object(loc.bucket, loc.key, io.BytesIO(data), len(data), content_type=content_type)
