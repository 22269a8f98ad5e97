"""Signed audit records in a hash chain, and signed checkpoints (pure; Ed25519).

A chain belongs to one signer: `site/<id>` (the site's export signing key) or `coordinator`.
Record n (0-based `seq`) holds `prev` = the hash of record n − 1 (GENESIS for record 0), an
event `kind` with its JSON `body`, and `refs`: hashes of other chains' records this event
consumed (the coordinator's aggregate lists the site export records it read, so the chains
cross-check). The signature covers the canonical JSON of every other field; the record's hash
is sha256 over the canonical JSON of the whole signed record. A checkpoint (Certificate
Transparency's signed tree head, for a chain) states (chain, count, head hash) under the
owner's signature, so a verifier holding only checkpoints can tell a truncated chain.
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import asdict, dataclass, field
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from components.domain.canonical import canonical_dumps

GENESIS = "0" * 64
FORMAT = "fedpipe.audit/v1"


class AuditFormatError(ValueError):
    """A record or checkpoint that cannot be read (bad JSON, missing fields, bad key)."""


def canonical(value: Any) -> bytes:
    """Canonical JSON (`components.domain.canonical`), UTF-8: the bytes signed and hashed."""
    return canonical_dumps(value).encode()


def _private(pem: str) -> Ed25519PrivateKey:
    key = serialization.load_pem_private_key(pem.encode(), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise AuditFormatError("audit signing key is not an Ed25519 private key")
    return key


def _public(pem: str) -> Ed25519PublicKey:
    try:
        key = serialization.load_pem_public_key(pem.encode())
    except ValueError as exc:
        raise AuditFormatError(f"audit public key is not valid PEM: {exc}") from exc
    if not isinstance(key, Ed25519PublicKey):
        raise AuditFormatError("audit public key is not an Ed25519 key")
    return key


def sign(payload: dict[str, Any], private_pem: str) -> str:
    return base64.b64encode(_private(private_pem).sign(canonical(payload))).decode()


def signature_ok(payload: dict[str, Any], signature: str, public_pem: str) -> bool:
    try:
        _public(public_pem).verify(base64.b64decode(signature, validate=True), canonical(payload))
    except (InvalidSignature, ValueError):
        return False
    return True


@dataclass(frozen=True)
class Record:
    """One signed event; `time` is ISO 8601 UTC, given by the caller (pure)."""

    chain: str
    seq: int
    prev: str
    time: str
    kind: str
    body: dict[str, Any]
    refs: list[str] = field(default_factory=list)
    signature: str = ""
    format: str = FORMAT

    def payload(self) -> dict[str, Any]:
        """What the signature covers: every field but the signature."""
        out = asdict(self)
        del out["signature"]
        return out

    def to_json(self) -> bytes:
        return canonical(asdict(self))

    @property
    def hash(self) -> str:
        return hashlib.sha256(self.to_json()).hexdigest()

    @classmethod
    def from_json(cls, data: bytes | str) -> Record:
        return cls(**_fields(data, cls, "record"))


@dataclass(frozen=True)
class Checkpoint:
    """The owner's signed statement: `chain` has `count` records ending in `head`."""

    chain: str
    count: int
    head: str
    time: str
    signature: str = ""
    format: str = FORMAT

    def payload(self) -> dict[str, Any]:
        out = asdict(self)
        del out["signature"]
        return out

    def to_json(self) -> bytes:
        return canonical(asdict(self))

    @classmethod
    def from_json(cls, data: bytes | str) -> Checkpoint:
        return cls(**_fields(data, cls, "checkpoint"))


def _fields(data: bytes | str, cls: type, what: str) -> dict[str, Any]:
    try:
        value = json.loads(data)
    except ValueError as exc:
        raise AuditFormatError(f"audit {what}: not valid JSON: {exc}") from exc
    names = set(cls.__dataclass_fields__)
    if not isinstance(value, dict) or set(value) != names:
        got = sorted(value) if isinstance(value, dict) else type(value).__name__
        raise AuditFormatError(f"audit {what}: expected fields {sorted(names)}, got {got}")
    return value


def append(
    previous: Record | None,
    chain: str,
    kind: str,
    body: dict[str, Any],
    private_pem: str,
    time: str,
    refs: list[str] | None = None,
) -> Record:
    """The next signed record of `chain` after `previous` (None: the first record)."""
    if previous is not None and previous.chain != chain:
        raise ValueError(f"previous record belongs to chain {previous.chain!r}, not {chain!r}")
    seq = 0 if previous is None else previous.seq + 1
    prev = GENESIS if previous is None else previous.hash
    unsigned = Record(chain, seq, prev, time, kind, dict(body), list(refs or []))
    return Record(**{**asdict(unsigned), "signature": sign(unsigned.payload(), private_pem)})


def checkpoint(records: list[Record], private_pem: str, time: str) -> Checkpoint:
    """A signed checkpoint of a non-empty chain (its records in order)."""
    if not records:
        raise ValueError("a checkpoint needs at least one record")
    unsigned = Checkpoint(records[-1].chain, len(records), records[-1].hash, time)
    return Checkpoint(**{**asdict(unsigned), "signature": sign(unsigned.payload(), private_pem)})
