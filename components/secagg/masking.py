"""Masks of one site's quantized vector (pure): self mask PRG(b_u) plus, per neighbour v,
+PRG(s_uv) when u < v and -PRG(s_uv) when u > v, all mod 2^w, so pairwise masks cancel in
the sum of all sites and the self masks are removed with the survivors' seeds."""

from __future__ import annotations

import numpy as np
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from components.domain.canonical import canonical_dumps
from components.secagg.prg import mask

PAIR_INFO = "fedpipe.dev/secagg/v1/pairwise-mask"


def pairwise_seed(
    own: X25519PrivateKey, peer: X25519PublicKey, run_id: str, round_: int, a: str, b: str
) -> bytes:
    """The 32-byte seed sites a and b agree on from their `s` keys, bound to run, round, pair."""
    info = canonical_dumps(
        {"purpose": PAIR_INFO, "run_id": run_id, "round": round_, "pair": sorted([a, b])}
    ).encode()
    return HKDF(hashes.SHA256(), 32, salt=None, info=info).derive(own.exchange(peer))


def pair_sign(site: str, other: str) -> int:
    """+1 when `site` adds the pair's mask, -1 when it subtracts it (sites sorted by id)."""
    return 1 if site < other else -1


def add_signed(total: np.ndarray, words: np.ndarray, sign: int) -> np.ndarray:
    """total ± words mod 2^w (numpy unsigned arithmetic wraps), in place into `total`."""
    return np.add(total, words, out=total) if sign > 0 else np.subtract(total, words, out=total)


def masked_vector(
    quantized: np.ndarray,
    self_seed: bytes,
    pair_seeds: dict[str, bytes],
    site: str,
    modulus_bits: int,
) -> np.ndarray:
    """quantized + PRG(self_seed) + Σ_v ±PRG(pair_seeds[v]) mod 2^w."""
    n = quantized.shape[0]
    out = mask(self_seed, n, modulus_bits)
    out += quantized.astype(out.dtype, copy=False)
    for other, seed in sorted(pair_seeds.items()):
        out = add_signed(out, mask(seed, n, modulus_bits), pair_sign(site, other))
    return out
