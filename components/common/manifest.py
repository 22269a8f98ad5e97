"""The signed manifest that travels with every DP update.

Pure logic: canonical JSON, Ed25519 sign and verify (`cryptography`). The verification
function here is the one aggregation uses; export uses `sign_manifest`.
"""

from __future__ import annotations

import base64
import json
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from components.common.artifact_files import json_bytes

MANIFEST_VERSION = "fedpipe.dev/update-manifest/v1"


class ManifestError(ValueError):
    """A manifest that is malformed, forged or does not match what was expected."""


@dataclass(frozen=True)
class UpdateManifest:
    """What a site says about one exported update.

    epsilon: privacy spent this round (RDP accountant); epsilon_pld: same, PLD accountant.
    num_examples: None when the policy hides the sample count.
    """

    run_id: str
    round: int
    site_id: str
    content_sha256: str
    tensor_names: list[str]
    dp: dict[str, Any]
    epsilon: float | None
    epsilon_pld: float | None
    delta: float | None
    num_examples: int | None
    policy_digest: str
    version: str = MANIFEST_VERSION
    extra: dict[str, Any] = field(default_factory=dict)

    def canonical_bytes(self) -> bytes:
        """The exact bytes that are signed: sorted keys, no whitespace."""
        return json.dumps(asdict(self), sort_keys=True, separators=(",", ":")).encode()


@dataclass(frozen=True)
class SignedManifest:
    manifest: UpdateManifest
    signature_b64: str

    def to_json(self) -> bytes:
        body = {"manifest": asdict(self.manifest), "signature": self.signature_b64}
        return json_bytes(body)

    @staticmethod
    def from_json(data: bytes) -> SignedManifest:
        """Parse a signed manifest; every field of `UpdateManifest` must be present (a field
        left out would otherwise take its default, e.g. `version`, and be trusted unsigned)."""
        try:
            body = json.loads(data)
            fields_ = body["manifest"]
            if not isinstance(fields_, dict):
                raise TypeError("manifest is not an object")
            missing = sorted(set(MANIFEST_FIELDS) - set(fields_))
            if missing:
                raise KeyError(f"missing field(s) {', '.join(missing)}")
            manifest = UpdateManifest(**fields_)
            signature = str(body["signature"])
        except (ValueError, KeyError, TypeError) as exc:
            raise ManifestError(f"malformed manifest: {exc}") from exc
        return SignedManifest(manifest, signature)


# Every field a manifest must carry (the verifier relies on each of them).
MANIFEST_FIELDS: tuple[str, ...] = tuple(f.name for f in fields(UpdateManifest))


def generate_keypair() -> tuple[str, str]:
    """A new Ed25519 key pair as (private PEM, public PEM) strings."""
    key = Ed25519PrivateKey.generate()
    private_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    public_pem = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    return private_pem, public_pem


def _private_key(pem: str) -> Ed25519PrivateKey:
    key = serialization.load_pem_private_key(pem.encode(), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise ManifestError("signing key is not an Ed25519 private key")
    return key


def _public_key(pem: str) -> Ed25519PublicKey:
    try:
        key = serialization.load_pem_public_key(pem.encode())
    except ValueError as exc:
        raise ManifestError(f"public key is not valid PEM: {exc}") from exc
    if not isinstance(key, Ed25519PublicKey):
        raise ManifestError("public key is not an Ed25519 key")
    return key


def sign_manifest(manifest: UpdateManifest, private_key_pem: str) -> SignedManifest:
    """Sign the canonical bytes of `manifest` with the site's Ed25519 key."""
    signature = _private_key(private_key_pem).sign(manifest.canonical_bytes())
    return SignedManifest(manifest, base64.b64encode(signature).decode())


def verify_manifest(
    signed: SignedManifest,
    *,
    public_key_pem: str,
    expected_site_id: str,
    expected_run_id: str,
    expected_round: int,
    content_sha256: str,
) -> UpdateManifest:
    """Check signature, site, run, round and content hash; return the manifest or raise.

    Raises ManifestError naming the first check that failed.
    """
    m = signed.manifest
    try:
        signature = base64.b64decode(signed.signature_b64, validate=True)
        _public_key(public_key_pem).verify(signature, m.canonical_bytes())
    except (InvalidSignature, ValueError) as exc:
        raise ManifestError(f"site {expected_site_id}: signature does not verify") from exc
    if m.version != MANIFEST_VERSION:
        raise ManifestError(f"site {expected_site_id}: manifest version {m.version!r} unsupported")
    if m.site_id != expected_site_id:
        raise ManifestError(f"manifest names site {m.site_id!r}, expected {expected_site_id!r}")
    if m.run_id != expected_run_id or m.round != expected_round:
        raise ManifestError(
            f"site {expected_site_id}: replay: manifest is for run {m.run_id!r} round {m.round}, "
            f"expected run {expected_run_id!r} round {expected_round}"
        )
    if m.content_sha256 != content_sha256:
        raise ManifestError(f"site {expected_site_id}: content hash does not match the manifest")
    return m


def update_object_key(run_id: str, round_: int, site_id: str) -> str:
    """Object key prefix unique to (run, round, site); `.npz` and `.manifest.json` go under it."""
    return f"updates/{run_id}/round-{round_:04d}/{site_id}"
