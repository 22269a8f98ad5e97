"""Shares of a site's secrets, encrypted for each holder (pure).

For sender u and holder v: plaintext = v's Shamir shares of u's self-mask seed b_u and of
u's masking private key s_u; key = HKDF-SHA256(X25519(c_u, c_v)) (32 bytes, info bound to
the protocol); AES-GCM with a fresh 96-bit nonce and associated data (run, round, sender,
receiver) in canonical JSON. A share replayed into another round, or routed to another
receiver, fails authentication and is refused.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from components.domain.canonical import canonical_dumps
from components.secagg.errors import SecAggError
from components.secagg.rand import RandomBytes
from components.secagg.shamir import Share

SHARE_KEY_INFO = b"fedpipe.dev/secagg/v1/share-encryption-key"
NONCE_BYTES = 12


def share_key(own: X25519PrivateKey, peer: X25519PublicKey) -> bytes:
    """The AES-256-GCM key two sites agree on from their `c` keys."""
    secret = own.exchange(peer)
    return HKDF(hashes.SHA256(), 32, salt=None, info=SHARE_KEY_INFO).derive(secret)


def associated_data(run_id: str, round_: int, sender: str, receiver: str) -> bytes:
    body = {"run_id": run_id, "round": round_, "sender": sender, "receiver": receiver}
    return canonical_dumps(body).encode()


@dataclass(frozen=True)
class SharePair:
    """What a holder keeps of one owner's secrets: the self-mask share and the key share."""

    owner: str
    self_mask: Share
    mask_key: Share


@dataclass(frozen=True)
class EncryptedShare:
    run_id: str
    round: int
    sender: str
    receiver: str
    ciphertext: bytes  # nonce || AES-GCM(ciphertext || tag)


def encrypt_share(
    pair: SharePair,
    run_id: str,
    round_: int,
    receiver: str,
    own: X25519PrivateKey,
    peer: X25519PublicKey,
    rand: RandomBytes,
) -> EncryptedShare:
    body = {
        "owner": pair.owner,
        "x": pair.self_mask.x,
        "self_mask": format(pair.self_mask.y, "x"),
        "mask_key": format(pair.mask_key.y, "x"),
    }
    nonce = rand(NONCE_BYTES)
    aad = associated_data(run_id, round_, pair.owner, receiver)
    sealed = AESGCM(share_key(own, peer)).encrypt(nonce, canonical_dumps(body).encode(), aad)
    return EncryptedShare(run_id, round_, pair.owner, receiver, nonce + sealed)


def decrypt_share(
    share: EncryptedShare,
    run_id: str,
    round_: int,
    receiver: str,
    own: X25519PrivateKey,
    peer: X25519PublicKey,
) -> SharePair:
    """The pair in `share` for `receiver` in (run, round); SecAggError when it was sealed for
    another run, round or receiver, or altered."""
    aad = associated_data(run_id, round_, share.sender, receiver)
    nonce, sealed = share.ciphertext[:NONCE_BYTES], share.ciphertext[NONCE_BYTES:]
    try:
        plain = AESGCM(share_key(own, peer)).decrypt(nonce, sealed, aad)
    except InvalidTag:
        raise SecAggError(
            f"share from site {share.sender} to {receiver}: does not authenticate for run "
            f"{run_id} round {round_} (replayed from another round, misrouted or altered); "
            "refused"
        ) from None
    body = json.loads(plain)
    if body["owner"] != share.sender:
        raise SecAggError(f"share from site {share.sender} names owner {body['owner']}")
    x = int(body["x"])
    return SharePair(
        share.sender, Share(x, int(body["self_mask"], 16)), Share(x, int(body["mask_key"], 16))
    )
