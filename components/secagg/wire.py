"""Wire formats of the SecAgg+ messages and of a site's round state (pure).

Every message is canonical JSON (bytes as hex, ciphertexts as base64), so what a stage writes
to an object store is exactly what the signature covers plus the signature; a masked vector
is its little-endian words. `load_*` refuse a wrong kind or malformed body naming the object.
The site's round state (`session_state` / `restore_session`) holds its private round keys,
its self-mask seed and the shares it holds: it is written only to the site's own bucket.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import numpy as np
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from components.domain.canonical import canonical_dumps
from components.secagg.errors import SecAggError
from components.secagg.graph import EXCLUSION_KIND, ROSTER_KIND, Exclusion, Roster
from components.secagg.keys import AD_KIND, Advertisement, RoundKeys, private_bytes
from components.secagg.prg import word_dtype
from components.secagg.shamir import Share
from components.secagg.shares import EncryptedShare, SharePair
from components.secagg.unmask import REQUEST_KIND, UnmaskRequest, UnmaskResponse

SHARE_KIND = "fedpipe.dev/secagg/encrypted-share/v1"
RESPONSE_KIND = "fedpipe.dev/secagg/unmask-response/v1"
STATE_KIND = "fedpipe.dev/secagg/site-state/v1"


def _dump(body: dict) -> bytes:
    return canonical_dumps(body).encode()


def _load(data: bytes, kind: str, where: str) -> dict[str, Any]:
    try:
        body = json.loads(data)
    except ValueError as exc:
        raise SecAggError(f"{where}: not JSON ({exc})") from None
    if not isinstance(body, dict) or body.get("kind") != kind:
        raise SecAggError(f"{where}: not a {kind} object")
    return body


def dump_advertisement(ad: Advertisement) -> bytes:
    return _dump({**ad.body(), "signature": ad.signature.hex()})


def load_advertisement(data: bytes, where: str = "advertisement") -> Advertisement:
    b = _load(data, AD_KIND, where)
    try:
        return Advertisement(
            str(b["run_id"]),
            int(b["round"]),
            str(b["site_id"]),
            bytes.fromhex(b["c_public"]),
            bytes.fromhex(b["s_public"]),
            bytes.fromhex(b["seed_commitment"]),
            bytes.fromhex(b["signature"]),
        )
    except (KeyError, ValueError, TypeError) as exc:
        raise SecAggError(f"{where}: malformed ({exc})") from None


def dump_roster(roster: Roster) -> bytes:
    return _dump({**roster.body(), "signature": roster.signature.hex()})


def load_roster(data: bytes, where: str = "roster") -> Roster:
    b = _load(data, ROSTER_KIND, where)
    try:
        return Roster(
            str(b["run_id"]),
            int(b["round"]),
            {str(k): str(v) for k, v in b["advertisements"].items()},
            {str(k): tuple(v) for k, v in b["neighbours"].items()},
            int(b["threshold"]),
            bytes.fromhex(b["signature"]),
        )
    except (KeyError, ValueError, TypeError, AttributeError) as exc:
        raise SecAggError(f"{where}: malformed ({exc})") from None


def dump_exclusion(exclusion: Exclusion) -> bytes:
    return _dump({**exclusion.body(), "signature": exclusion.signature.hex()})


def load_exclusion(data: bytes, where: str = "exclusion") -> Exclusion:
    b = _load(data, EXCLUSION_KIND, where)
    try:
        return Exclusion(
            str(b["run_id"]),
            int(b["round"]),
            {str(k): str(v) for k, v in b["excluded"].items()},
            bytes.fromhex(b["signature"]),
        )
    except (KeyError, ValueError, TypeError, AttributeError) as exc:
        raise SecAggError(f"{where}: malformed ({exc})") from None


def dump_share(share: EncryptedShare) -> bytes:
    return _dump(
        {
            "kind": SHARE_KIND,
            "run_id": share.run_id,
            "round": share.round,
            "sender": share.sender,
            "receiver": share.receiver,
            "ciphertext": base64.b64encode(share.ciphertext).decode(),
        }
    )


def load_share(data: bytes, where: str = "share") -> EncryptedShare:
    b = _load(data, SHARE_KIND, where)
    try:
        return EncryptedShare(
            str(b["run_id"]),
            int(b["round"]),
            str(b["sender"]),
            str(b["receiver"]),
            base64.b64decode(b["ciphertext"], validate=True),
        )
    except (KeyError, ValueError, TypeError) as exc:
        raise SecAggError(f"{where}: malformed ({exc})") from None


def dump_request(request: UnmaskRequest) -> bytes:
    return _dump({**request.body(), "signature": request.signature.hex()})


def load_request(data: bytes, where: str = "unmask request") -> UnmaskRequest:
    b = _load(data, REQUEST_KIND, where)
    try:
        return UnmaskRequest(
            str(b["run_id"]),
            int(b["round"]),
            tuple(b["survivors"]),
            tuple(b["dropped"]),
            bytes.fromhex(b["signature"]),
        )
    except (KeyError, ValueError, TypeError) as exc:
        raise SecAggError(f"{where}: malformed ({exc})") from None


def _shares(d: dict[str, Share]) -> dict[str, list]:
    return {owner: [s.x, format(s.y, "x")] for owner, s in sorted(d.items())}


def _unshares(d: dict[str, list]) -> dict[str, Share]:
    return {str(owner): Share(int(x), int(y, 16)) for owner, (x, y) in d.items()}


def dump_response(response: UnmaskResponse) -> bytes:
    return _dump(
        {
            "kind": RESPONSE_KIND,
            "run_id": response.run_id,
            "round": response.round,
            "holder": response.holder,
            "self_mask": _shares(response.self_mask),
            "mask_key": _shares(response.mask_key),
        }
    )


def load_response(data: bytes, where: str = "unmask response") -> UnmaskResponse:
    b = _load(data, RESPONSE_KIND, where)
    try:
        return UnmaskResponse(
            str(b["run_id"]),
            int(b["round"]),
            str(b["holder"]),
            _unshares(b["self_mask"]),
            _unshares(b["mask_key"]),
        )
    except (KeyError, ValueError, TypeError) as exc:
        raise SecAggError(f"{where}: malformed ({exc})") from None


def dump_masked(vector: np.ndarray) -> bytes:
    """The little-endian words of a masked vector (what the export writes)."""
    return vector.astype(vector.dtype.newbyteorder("<")).tobytes()


def load_masked(data: bytes, length: int, modulus_bits: int, where: str = "masked") -> np.ndarray:
    dtype = word_dtype(modulus_bits)
    size = np.dtype(dtype).itemsize
    if len(data) != length * size:
        raise SecAggError(f"{where}: {len(data)} bytes, expected {length} words of {size} bytes")
    return np.frombuffer(data, dtype=np.dtype(dtype).newbyteorder("<")).astype(dtype)


def state_body(
    keys: RoundKeys,
    self_seed: bytes,
    advertisement: Advertisement,
    held: dict[str, SharePair],
    revealed: dict[str, str],
) -> dict[str, Any]:
    return {
        "kind": STATE_KIND,
        "c_private": private_bytes(keys.c).hex(),
        "s_private": private_bytes(keys.s).hex(),
        "self_seed": self_seed.hex(),
        "advertisement": json.loads(dump_advertisement(advertisement)),
        "held": {
            o: [p.self_mask.x, format(p.self_mask.y, "x"), format(p.mask_key.y, "x")]
            for o, p in sorted(held.items())
        },
        "revealed": dict(sorted(revealed.items())),
    }


def parse_state(
    data: bytes, where: str = "site state"
) -> tuple[RoundKeys, bytes, Advertisement, dict[str, SharePair], dict[str, str]]:
    b = _load(data, STATE_KIND, where)
    try:
        keys = RoundKeys(
            c=X25519PrivateKey.from_private_bytes(bytes.fromhex(b["c_private"])),
            s=X25519PrivateKey.from_private_bytes(bytes.fromhex(b["s_private"])),
        )
        ad = load_advertisement(_dump(b["advertisement"]), f"{where}: advertisement")
        held = {
            str(o): SharePair(str(o), Share(int(x), int(bs, 16)), Share(int(x), int(ks, 16)))
            for o, (x, bs, ks) in b["held"].items()
        }
        return keys, bytes.fromhex(b["self_seed"]), ad, held, dict(b["revealed"])
    except (KeyError, ValueError, TypeError) as exc:
        raise SecAggError(f"{where}: malformed ({exc})") from None
