"""CKKS key material: made once at federation setup, the secret key only at the sites (I/O edge).

`new_federation_keys` makes one context and returns two envelopes (`components.he.wire`): the
sites' (with the secret key) and the coordinator's public copy (without it), under one random
context id. Setup puts the sites' envelope into each site's own bucket (`he/context.secret`,
written by the site's own identity; the coordinator's read-only identity has no grant on
`he/`) and the public one into the coordinator's GCS bucket (`he/context.public`).
`fedpipe he-setup` and `fedpipe run --local` do that.

At run time a site task reads its context with its own client (`site_context`), the
aggregate task the public one (`coordinator_context`); each refuses the other kind, so a
coordinator that somehow got the secret envelope still would not use it, and a site without
the secret key fails naming the object it needs and the command that writes it.
"""

from __future__ import annotations

import secrets as _secrets
from dataclasses import dataclass
from typing import Any

from components.he.ckks import HeError, coordinator_context_bytes, load_context, new_context
from components.he.wire import (
    COORDINATOR_CONTEXT_KEY,
    SITE_CONTEXT_KEY,
    ContextEnvelope,
    pack_context,
    unpack_context,
)

SETUP_HINT = "run `fedpipe he-setup` (fedpipe run --local does it for a local federation)"
MAX_CONTEXT_BYTES = 64 << 20


@dataclass(frozen=True)
class FederationKeys:
    """The two envelopes of one setup (packed bytes) and their context id."""

    context_id: str
    site: bytes  # with the secret key: every site's bucket, never the coordinator
    coordinator: bytes  # public copy: the coordinator's bucket


@dataclass(frozen=True)
class LoadedContext:
    """A deserialized TenSEAL context and the federation context id it was set up under."""

    context_id: str
    context: Any


def new_federation_keys() -> FederationKeys:
    """A fresh CKKS context (TenSEAL draws its keys from the OS) and a random context id."""
    ctx = new_context()
    context_id = "ckks-" + _secrets.token_hex(8)
    site = ContextEnvelope(context_id, True, ctx.serialize(save_secret_key=True))
    public = ContextEnvelope(context_id, False, coordinator_context_bytes(ctx))
    return FederationKeys(context_id, pack_context(site), pack_context(public))


def open_envelope(data: bytes, *, secret: bool, where: str) -> LoadedContext:
    """The context of a packed envelope; HeError when it has / lacks the secret key against
    `secret` (the header and the context itself are both checked)."""
    envelope = unpack_context(data, where)
    if envelope.secret != secret:
        which = "holds the secret key" if envelope.secret else "has no secret key"
        needs = (
            "a site needs the sites' copy" if secret else "the coordinator needs the public copy"
        )
        raise HeError(f"{where}: this context {which}; {needs}")
    try:
        ctx = load_context(envelope.context, secret=secret)
    except HeError as exc:
        raise HeError(f"{where}: {exc}") from None
    except Exception as exc:  # TenSEAL raises its own types for corrupt bytes
        raise HeError(f"{where}: not a readable TenSEAL context ({exc})") from None
    return LoadedContext(envelope.context_id, ctx)


def site_context(site: Any, client: Any) -> LoadedContext:
    """The site's CKKS context with the secret key, from its own bucket.

    HeError naming the site, the object and the setup command when it is missing or is not
    a secret context."""
    from components.common.create_only import ObjectTooLargeError, read_or_none

    bucket = site.object_store.bucket
    where = f"site {site.id}: s3://{bucket}/{SITE_CONTEXT_KEY}"
    try:
        data = read_or_none(client, bucket, SITE_CONTEXT_KEY, MAX_CONTEXT_BYTES)
    except ObjectTooLargeError as exc:
        held = f"{exc.size} bytes" if exc.size is not None else "more"
        raise HeError(
            f"{where}: {held}, more than a CKKS context ({exc.limit} bytes); it is not one: "
            f"{SETUP_HINT} and put the site's copy there"
        ) from None
    if data is None:
        raise HeError(
            f"{where} is missing: aggregation.protection he needs the federation's CKKS "
            f"secret context in the site's own bucket to encrypt its update and decrypt the "
            f"global model; {SETUP_HINT}"
        )
    return open_envelope(data, secret=True, where=where)


def read_gcs_context(bucket: Any, key: str) -> bytes | None:
    """The bytes of a context object in a GCS bucket (`google.cloud.storage` Bucket), None when
    missing. Never read whole when larger than a context: HeError naming the object, its size
    and the limit (MAX_CONTEXT_BYTES), whether or not GCS reports the size."""
    where = f"gs://{bucket.name}/{key}"
    blob = bucket.get_blob(key)
    if blob is None:
        return None
    if blob.size is not None and blob.size > MAX_CONTEXT_BYTES:
        raise HeError(_too_large(where, f"{blob.size} bytes"))
    data = blob.download_as_bytes(start=0, end=MAX_CONTEXT_BYTES)  # end inclusive: limit + 1
    if len(data) > MAX_CONTEXT_BYTES:
        raise HeError(_too_large(where, f"more than {MAX_CONTEXT_BYTES} bytes"))
    return data


def _too_large(where: str, held: str) -> str:
    return (
        f"{where} is {held}, more than a CKKS context ({MAX_CONTEXT_BYTES} bytes): it is not "
        f"one; replace it with the public copy from `fedpipe he-setup --out DIR`"
    )


def coordinator_context(bucket: Any) -> LoadedContext:
    """The coordinator's public CKKS context from its GCS bucket (`google.cloud.storage`
    Bucket); HeError when missing, larger than a context, or holding the secret key."""
    where = f"gs://{bucket.name}/{COORDINATOR_CONTEXT_KEY}"
    data = read_gcs_context(bucket, COORDINATOR_CONTEXT_KEY)
    if data is None:
        raise HeError(
            f"{where} is missing: the coordinator adds the sites' ciphertexts with the "
            f"federation's public CKKS context; {SETUP_HINT}"
        )
    return open_envelope(data, secret=False, where=where)
