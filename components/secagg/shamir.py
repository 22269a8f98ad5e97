"""Shamir secret sharing of 32-byte secrets over GF(p), p = 2^521 - 1 (pure).

A share is (x, y) with x in 1..n public (the holder's index) and y = f(x), f of degree t - 1
with f(0) = secret and the other coefficients uniform from the injected randomness. Any t
shares give the secret by Lagrange interpolation at 0; fewer give no information.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from components.secagg.errors import SecAggError
from components.secagg.rand import RandomBytes

PRIME = 2**521 - 1
SECRET_BYTES = 32
_COEFF_BYTES = 72  # 576 random bits reduced mod p: bias below 2^-55


@dataclass(frozen=True)
class Share:
    x: int
    y: int


def split(secret: bytes, xs: Sequence[int], threshold: int, rand: RandomBytes) -> list[Share]:
    """One share of `secret` per holder index in `xs` (distinct, >= 1); any `threshold` of
    them reconstruct it."""
    if len(secret) != SECRET_BYTES:
        raise SecAggError(f"a shared secret must be {SECRET_BYTES} bytes, got {len(secret)}")
    if len(set(xs)) != len(xs) or min(xs, default=0) < 1:
        raise SecAggError(f"holder indices {list(xs)} must be distinct and >= 1")
    if not 1 <= threshold <= len(xs):
        raise SecAggError(f"threshold {threshold} must be in 1..{len(xs)} holders")
    coefficients = [int.from_bytes(secret, "big")]
    coefficients += [
        int.from_bytes(rand(_COEFF_BYTES), "big") % PRIME for _ in range(threshold - 1)
    ]
    shares = []
    for x in xs:
        y = 0
        for c in reversed(coefficients):
            y = (y * x + c) % PRIME
        shares.append(Share(x, y))
    return shares


def combine(shares: Sequence[Share], threshold: int) -> bytes:
    """The secret from at least `threshold` shares with distinct x (the first `threshold`)."""
    distinct = {s.x: s for s in shares}
    if len(distinct) != len(shares):
        raise SecAggError("shares with the same index cannot be combined")
    if len(shares) < threshold:
        raise SecAggError(f"{len(shares)} share(s) cannot reconstruct: threshold is {threshold}")
    use = list(shares)[:threshold]
    secret = 0
    for i, si in enumerate(use):
        num, den = 1, 1
        for j, sj in enumerate(use):
            if i != j:
                num = num * (-sj.x) % PRIME
                den = den * (si.x - sj.x) % PRIME
        secret = (secret + si.y * num * pow(den, -1, PRIME)) % PRIME
    if secret >= 2 ** (8 * SECRET_BYTES):
        raise SecAggError("shares do not reconstruct a 32-byte secret (corrupt or mixed shares)")
    return secret.to_bytes(SECRET_BYTES, "big")
