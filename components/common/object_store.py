"""Object-store clients built at the executor edge from a site spec + secrets.

Sites: a `minio.Minio` client for the site's S3-compatible store (MinIO on-prem).
Coordinator: a `google.cloud.storage.Client` (honours `STORAGE_EMULATOR_HOST` in local runs).
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from components.common.secrets import object_store_endpoint, site_secret
from components.domain.models import Site

if TYPE_CHECKING:
    from google.cloud import storage
    from minio import Minio


AUTH_CODES = {
    "SignatureDoesNotMatch": "the secret key does not match the access key",
    "InvalidAccessKeyId": "the store knows no such access key",
    "AccessDenied": "wrong keys, or keys whose identity may not do this",
}


class StoreAccessError(RuntimeError):
    """A store refused a site's credentials; the message names the site, the store and the fix."""


def credentials_problem(code: str | None, site_id: str, store: str, what: str = "") -> str | None:
    """The message for a store that refused `site_id`'s keys with S3 error `code`, or None
    when `code` is no credential problem (pure)."""
    meaning = AUTH_CODES.get(code or "")
    if meaning is None:
        return None
    env = f"FEDPIPE_S3_ACCESS_KEY__{site_id.upper().replace('-', '_').replace('.', '_')}"
    return (
        f"site {site_id}: object store {store} refused its credentials{what} ({code}: {meaning}); "
        f"check the site's S3_ACCESS_KEY / S3_SECRET_KEY ({env} and the matching "
        f"FEDPIPE_S3_SECRET_KEY__..., or $FEDPIPE_SECRETS_DIR/{site_id}/s3_access_key and "
        "s3_secret_key; on Kubernetes the Secret named in the site file)"
    )


def split_endpoint(endpoint: str, secure: bool) -> tuple[str, bool]:
    """`host:port` and TLS flag; a scheme on the endpoint (`http://`, `https://`) wins over `secure`.

    An override in FEDPIPE_ENDPOINT_OVERRIDES may carry `https://` to keep TLS.
    """
    if endpoint.startswith("http://"):
        return endpoint.removeprefix("http://").rstrip("/"), False
    if endpoint.startswith("https://"):
        return endpoint.removeprefix("https://").rstrip("/"), True
    return endpoint, secure


S3_REGION = "us-east-1"
"""The region the clients sign for (MinIO's default). Fixed, so the client never asks the
server for a bucket's location: an identity limited to prefixes may not (403)."""


UNAMBIGUOUS_AUTH_CODES = frozenset({"SignatureDoesNotMatch", "InvalidAccessKeyId"})
"""Codes that can only mean wrong keys (a bodiless 403 on HEAD reads as AccessDenied, which
the access rules also answer on purpose, so it is left to the caller)."""


def _site_client_class() -> type:
    from minio import Minio
    from minio.error import S3Error

    class SiteMinio(Minio):
        """A `minio.Minio` whose requests turn a refusal of the keys into StoreAccessError
        naming the site and the store (instead of an S3Error deep in a stack trace)."""

        fedpipe_site = ""
        fedpipe_store = ""

        def _url_open(self, *args: Any, **kwargs: Any) -> Any:
            try:
                return super()._url_open(*args, **kwargs)
            except S3Error as exc:
                if exc.code in UNAMBIGUOUS_AUTH_CODES:
                    message = credentials_problem(exc.code, self.fedpipe_site, self.fedpipe_store)
                    raise StoreAccessError(message) from None
                raise

    return SiteMinio


def site_minio_client(site: Site) -> Minio:
    """A `minio.Minio` client for `site`'s bucket: endpoint via `object_store_endpoint`,
    credentials `S3_ACCESS_KEY` / `S3_SECRET_KEY` via `site_secret(site.id, ...)`."""

    if site.object_store.type != "s3" or not site.object_store.endpoint:
        raise ValueError(f"site {site.id}: object_store is not an s3 store with an endpoint")
    configured = object_store_endpoint(site.id, site.object_store.endpoint)
    overridden = configured != site.object_store.endpoint
    # An override (local runs) is plain HTTP unless it says https:// (as components.datasets.io).
    endpoint, secure = split_endpoint(configured, site.object_store.secure and not overridden)
    client = _site_client_class()(
        endpoint,
        access_key=site_secret(site.id, "S3_ACCESS_KEY"),
        secret_key=site_secret(site.id, "S3_SECRET_KEY"),
        secure=secure,
        region=S3_REGION,
    )
    client.fedpipe_site = site.id
    client.fedpipe_store = (
        f"{'https' if secure else 'http'}://{endpoint} (bucket {site.object_store.bucket})"
    )
    return client


def coordinator_gcs_client(coordinator: Site) -> storage.Client:
    """A google-cloud-storage client for the coordinator's bucket.

    With `STORAGE_EMULATOR_HOST` set (local runs, tests) the library talks to the emulator
    with anonymous credentials; otherwise application-default credentials (workload identity).
    """
    from google.cloud import storage

    if coordinator.object_store.type != "gcs":
        raise ValueError(f"site {coordinator.id}: object_store.type is not gcs")
    emulator = os.environ.get("STORAGE_EMULATOR_HOST")
    if emulator:
        from google.auth.credentials import AnonymousCredentials

        return storage.Client(
            project="fedpipe-local",
            credentials=AnonymousCredentials(),
            client_options={"api_endpoint": emulator},
        )
    return storage.Client()
