"""Per-round X25519 key pairs and their Ed25519-signed advertisements (pure).

A site makes two fresh X25519 pairs per (run, round): `c` (encrypts the shares it exchanges)
and `s` (agrees its pairwise masks). It publishes the public halves with run, round and its id,
signed with its Ed25519 site key; everyone verifies against the site's public key from its
site spec. The signed body binds run and round, so an advertisement replayed from another
round or run is refused, and a coordinator cannot substitute keys of its own. It also commits
to the site's self-mask seed b (a SHA-256 of b under a domain tag, run, round and site; b is
256 uniform bits, so the hash reveals nothing of it): the coordinator checks every seed it
reconstructs against it, so a holder returning a wrong share is caught, not summed in.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey

from components.domain.canonical import canonical_dumps
from components.secagg.errors import SecAggError, SignatureError
from components.secagg.rand import RandomBytes

AD_KIND = "fedpipe.dev/secagg/key-advertisement/v1"
_RAW = serialization.Encoding.Raw, serialization.PublicFormat.Raw


def public_bytes(key: X25519PublicKey | Ed25519PublicKey) -> bytes:
    return key.public_bytes(*_RAW)


def private_bytes(key: X25519PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.Raw,
        serialization.PrivateFormat.Raw,
        serialization.NoEncryption(),
    )


def x25519_from(rand: RandomBytes) -> X25519PrivateKey:
    return X25519PrivateKey.from_private_bytes(rand(32))


def ed25519_from(rand: RandomBytes) -> Ed25519PrivateKey:
    """An Ed25519 key from injected bytes (tests; sites load theirs from their secret)."""
    return Ed25519PrivateKey.from_private_bytes(rand(32))


def signed_bytes(body: dict) -> bytes:
    """The bytes a signature covers: canonical JSON of the body."""
    return canonical_dumps(body).encode()


def sign(body: dict, key: Ed25519PrivateKey) -> bytes:
    return key.sign(signed_bytes(body))


def verify(body: dict, signature: bytes, key: Ed25519PublicKey, what: str) -> None:
    """SignatureError naming `what` when `signature` is not `key`'s over `body`."""
    try:
        key.verify(signature, signed_bytes(body))
    except InvalidSignature:
        raise SignatureError(f"{what}: signature does not verify; refused") from None


def seed_commitment(run_id: str, round_: int, site_id: str, seed: bytes) -> bytes:
    """SHA-256 of the self-mask seed under a domain tag bound to run, round and site."""
    tag = signed_bytes(
        {
            "purpose": "fedpipe.dev/secagg/v1/self-mask-commitment",
            "run_id": run_id,
            "round": round_,
            "site_id": site_id,
        }
    )
    return hashlib.sha256(tag + seed).digest()


@dataclass(frozen=True)
class RoundKeys:
    """A site's secret halves for one round (never leave the site)."""

    c: X25519PrivateKey
    s: X25519PrivateKey


@dataclass(frozen=True)
class Advertisement:
    """The public halves of a site's round keys, signed with its Ed25519 site key."""

    run_id: str
    round: int
    site_id: str
    c_public: bytes
    s_public: bytes
    seed_commitment: bytes
    signature: bytes

    def body(self) -> dict:
        return {
            "kind": AD_KIND,
            "run_id": self.run_id,
            "round": self.round,
            "site_id": self.site_id,
            "c_public": self.c_public.hex(),
            "s_public": self.s_public.hex(),
            "seed_commitment": self.seed_commitment.hex(),
        }

    def digest(self) -> str:
        """sha256 over the signed body and signature (what the roster pins)."""
        return hashlib.sha256(signed_bytes(self.body()) + self.signature).hexdigest()

    @property
    def c_key(self) -> X25519PublicKey:
        return X25519PublicKey.from_public_bytes(self.c_public)

    @property
    def s_key(self) -> X25519PublicKey:
        return X25519PublicKey.from_public_bytes(self.s_public)


def new_round_keys(
    run_id: str,
    round_: int,
    site_id: str,
    site_key: Ed25519PrivateKey,
    self_seed: bytes,
    rand: RandomBytes,
) -> tuple[RoundKeys, Advertisement]:
    """Fresh key pairs for (run, round) and their signed advertisement (committing to
    `self_seed`)."""
    keys = RoundKeys(c=x25519_from(rand), s=x25519_from(rand))
    unsigned = Advertisement(
        run_id,
        round_,
        site_id,
        public_bytes(keys.c.public_key()),
        public_bytes(keys.s.public_key()),
        seed_commitment(run_id, round_, site_id, self_seed),
        b"",
    )
    signature = sign(unsigned.body(), site_key)
    return keys, Advertisement(**{**unsigned.__dict__, "signature": signature})


def verify_advertisement(
    ad: Advertisement, run_id: str, round_: int, site_id: str, site_public: Ed25519PublicKey
) -> Advertisement:
    """`ad` when it is `site_id`'s for (run, round) and signed by its site key; else refused."""
    where = f"key advertisement of site {ad.site_id} (run {ad.run_id}, round {ad.round})"
    if (ad.run_id, ad.round, ad.site_id) != (run_id, round_, site_id):
        raise SecAggError(
            f"{where}: expected site {site_id}, run {run_id}, round {round_}; refused "
            "(replayed or misrouted)"
        )
    if len(ad.c_public) != 32 or len(ad.s_public) != 32 or ad.c_public == ad.s_public:
        raise SecAggError(f"{where}: public keys must be two distinct 32-byte X25519 keys")
    if len(ad.seed_commitment) != 32:
        raise SecAggError(f"{where}: the self-mask seed commitment must be 32 bytes")
    verify(ad.body(), ad.signature, site_public, where)
    return ad
