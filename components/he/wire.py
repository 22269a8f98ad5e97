"""Byte formats of homomorphic aggregation (pure, no I/O, no TenSEAL).

* A **context envelope** (`pack_context` / `unpack_context`): a magic line, one JSON header
  line `{"context_id", "secret"}` and the serialized TenSEAL context. The id is fixed at
  federation setup (`components.he.keys`); every encrypted update and aggregate names it, so
  a ciphertext made under another federation's context is refused by name, not decrypted to
  noise. `secret` says whether the context holds the secret key (the sites' copy) or not (the
  coordinator's).
* A **ciphertext bundle** (`pack_bundle` / `unpack_bundle`): a magic line, one JSON header
  line `{"context_id", "length", "chunks": [byte sizes]}` and the chunks (serialized CKKS
  vectors of `[w * update..., w]`, 4096 slots each). What export writes as `<key>.ckks` and
  (with the model's `[v..., steps]` instead) the coordinator publishes as a version's
  `model.ckks`.

Object keys: the sites' context is `he/context.secret` in each site's own bucket (a prefix the
coordinator's read-only identity never gets, `pipelines.access.rules`); the coordinator's
public copy is `he/context.public` in its GCS bucket.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass

from components.he.ckks import SLOTS, EncryptedUpdate, HeError

SITE_CONTEXT_KEY = "he/context.secret"
COORDINATOR_CONTEXT_KEY = "he/context.public"
CIPHERTEXT_SUFFIX = ".ckks"
# A version's published model object under he: the encrypted global model (one bundle).
MODEL_CIPHERTEXT_FILE = "model.ckks"

_CONTEXT_MAGIC = b"fedpipe-ckks-context/1\n"
_BUNDLE_MAGIC = b"fedpipe-ckks-bundle/1\n"
MAX_HEADER_BYTES = 1 << 20
# A serialized N = 8192 ciphertext at these moduli is about 330 KB; a fresh one and a sum alike.
MAX_CHUNK_BYTES = 1 << 20


@dataclass(frozen=True)
class ContextEnvelope:
    """A serialized context with the federation's context id."""

    context_id: str
    secret: bool
    context: bytes


def pack_context(envelope: ContextEnvelope) -> bytes:
    header = json.dumps({"context_id": envelope.context_id, "secret": envelope.secret})
    return _CONTEXT_MAGIC + header.encode() + b"\n" + envelope.context


def _split(data: bytes, magic: bytes, what: str) -> tuple[dict, bytes]:
    if not data.startswith(magic):
        raise HeError(f"{what}: not a fedpipe CKKS {what} (unknown format)")
    rest = data[len(magic) :]
    end = rest.find(b"\n", 0, MAX_HEADER_BYTES)
    if end < 0:
        raise HeError(f"{what}: header line missing or too long")
    try:
        header = json.loads(rest[:end])
    except ValueError as exc:
        raise HeError(f"{what}: header is not JSON: {exc}") from None
    if not isinstance(header, dict):
        raise HeError(f"{what}: header is not a JSON object")
    return header, rest[end + 1 :]


def unpack_context(data: bytes, where: str = "context") -> ContextEnvelope:
    """The envelope of `data`; HeError naming `where` when it is not one."""
    header, body = _split(data, _CONTEXT_MAGIC, where)
    context_id, secret = header.get("context_id"), header.get("secret")
    if not isinstance(context_id, str) or not context_id or not isinstance(secret, bool):
        raise HeError(f"{where}: header needs a context_id string and a secret boolean")
    if not body:
        raise HeError(f"{where}: no serialized context after the header")
    return ContextEnvelope(context_id, secret, body)


def expected_chunks(length: int) -> int:
    """Chunks of a bundle of an update of `length` values (+ one weight slot)."""
    return math.ceil((length + 1) / SLOTS)


def pack_bundle(update: EncryptedUpdate, context_id: str) -> bytes:
    header = {
        "context_id": context_id,
        "length": update.length,
        "chunks": [len(c) for c in update.chunks],
    }
    return _BUNDLE_MAGIC + json.dumps(header).encode() + b"\n" + b"".join(update.chunks)


def unpack_bundle(
    data: bytes,
    *,
    context_id: str,
    length: int,
    max_chunk_bytes: int = MAX_CHUNK_BYTES,
    where: str = "ciphertext",
) -> EncryptedUpdate:
    """The chunks of a bundle, checked against the federation's context id, the model's
    parameter count and a per-chunk size limit; HeError naming `where` otherwise."""
    header, body = _split(data, _BUNDLE_MAGIC, where)
    if header.get("context_id") != context_id:
        raise HeError(
            f"{where}: encrypted under CKKS context {header.get('context_id')!r}, this "
            f"federation's is {context_id!r} (another setup's keys)"
        )
    if header.get("length") != length:
        raise HeError(f"{where}: {header.get('length')!r} values, the model has {length}")
    sizes = header.get("chunks")
    if (
        not isinstance(sizes, list)
        or len(sizes) != expected_chunks(length)
        or not all(isinstance(s, int) and not isinstance(s, bool) and s > 0 for s in sizes)
    ):
        raise HeError(
            f"{where}: needs {expected_chunks(length)} ciphertext chunks of positive size, "
            f"header says {sizes!r}"
        )
    if max(sizes) > max_chunk_bytes:
        raise HeError(f"{where}: a chunk of {max(sizes)} bytes exceeds {max_chunk_bytes}")
    if sum(sizes) != len(body):
        raise HeError(f"{where}: header announces {sum(sizes)} bytes, {len(body)} follow")
    chunks, offset = [], 0
    for size in sizes:
        chunks.append(body[offset : offset + size])
        offset += size
    return EncryptedUpdate(tuple(chunks), length)
