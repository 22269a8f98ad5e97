"""CKKS adapter (TenSEAL 0.3.18): encrypted weighted sums for FedAvg.

Parameters: N = 8192 (4096 slots per ciphertext), coefficient moduli [60, 40, 40, 60] bits,
scale 2^40 (about 128-bit security for N = 8192 by the HE standard's table). A vector is
encrypted in chunks of 4096 slots; the site appends its weight as one more slot, so the
coordinator's sum carries the total weight too and never learns a single site's weight.

Threat model (NVFlare's): a context is created once at federation setup; the secret key is
given to every site and never to the coordinator, which holds a public copy (no secret key:
it can add ciphertexts, it cannot decrypt). This protects each update from the coordinator
and anyone reading its bucket; it does not protect a site's update from another site that
could read it, since all sites share the secret key. CKKS is approximate: the decrypted sum
carries noise of about 1e-8 absolute per slot at these parameters. Only plain FedAvg works on
an encrypted sum (`components.domain.protection`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

POLY_MODULUS_DEGREE = 8192
COEFF_MOD_BIT_SIZES = (60, 40, 40, 60)
SCALE_BITS = 40
SLOTS = POLY_MODULUS_DEGREE // 2


class HeError(ValueError):
    """A context or ciphertext that cannot be used as asked (names which and why)."""


def new_context():
    """A fresh CKKS context with its secret key (federation setup, then to the sites)."""
    import tenseal as ts

    ctx = ts.context(
        ts.SCHEME_TYPE.CKKS,
        poly_modulus_degree=POLY_MODULUS_DEGREE,
        coeff_mod_bit_sizes=list(COEFF_MOD_BIT_SIZES),
    )
    ctx.global_scale = 2**SCALE_BITS
    return ctx


def site_context_bytes(ctx) -> bytes:
    """The context with its secret key, for the sites' secret stores."""
    if not ctx.is_private():
        raise HeError("this context has no secret key; the sites need the one from setup")
    return ctx.serialize(save_secret_key=True)


def coordinator_context_bytes(ctx) -> bytes:
    """A public copy of the context (no secret key): all the coordinator may hold. Without
    relinearization and Galois keys too: adding ciphertexts needs neither (about 0.46 MB
    instead of 1.9 MB at these parameters)."""
    public = ctx.copy()
    public.make_context_public()
    return public.serialize(
        save_public_key=True, save_secret_key=False, save_galois_keys=False, save_relin_keys=False
    )


def load_context(data: bytes, *, secret: bool):
    """A serialized context; HeError when it holds / lacks the secret key against `secret`."""
    import tenseal as ts

    ctx = ts.context_from(data)
    if ctx.is_private() != secret:
        which = "holds the secret key" if ctx.is_private() else "has no secret key"
        raise HeError(f"context {which}; expected {'a site' if secret else 'the coordinator'}'s")
    return ctx


@dataclass(frozen=True)
class EncryptedUpdate:
    """Ciphertext chunks of [weight * update..., weight] and the plain length of the update."""

    chunks: tuple[bytes, ...]
    length: int

    @property
    def nbytes(self) -> int:
        return sum(len(c) for c in self.chunks)


def encrypt_weighted(ctx, update: np.ndarray, weight: float) -> EncryptedUpdate:
    """A site's encrypted contribution: weight * update, then the weight, in 4096-slot chunks."""
    import tenseal as ts

    x = np.asarray(update, dtype=np.float64).ravel()
    if not np.isfinite(x).all() or not (weight > 0 and np.isfinite(weight)):
        raise HeError("update and weight must be finite, weight > 0")
    plain = np.concatenate([x * weight, [float(weight)]])
    chunks = tuple(
        ts.ckks_vector(ctx, plain[i : i + SLOTS].tolist()).serialize()
        for i in range(0, plain.size, SLOTS)
    )
    return EncryptedUpdate(chunks, int(x.size))


def add_encrypted(public_ctx, updates: Sequence[EncryptedUpdate]) -> EncryptedUpdate:
    """The coordinator's step: the ciphertext sum, computed with the public context only."""
    if public_ctx.is_private():
        raise HeError("the coordinator must add with a public context (it holds the secret key)")
    if not updates:
        raise HeError("no encrypted updates to add")
    length = updates[0].length
    if any(u.length != length or len(u.chunks) != len(updates[0].chunks) for u in updates):
        raise HeError("encrypted updates of different lengths cannot be added")
    summed = []
    for i in range(len(updates[0].chunks)):
        total = None
        for u in updates:
            vec = _linked(public_ctx, u.chunks[i])
            total = vec if total is None else total + vec
        summed.append(total.serialize())
    return EncryptedUpdate(tuple(summed), length)


def decrypt_mean(secret_ctx, aggregate: EncryptedUpdate) -> tuple[np.ndarray, float]:
    """A site's step: (Σ w_i x_i / Σ w_i, Σ w_i) from the encrypted aggregate."""
    plain = _decrypt(secret_ctx, aggregate)
    total_weight = float(plain[-1])
    if not total_weight > 0:
        raise HeError(f"decrypted total weight {total_weight} is not positive")
    return plain[:-1] / total_weight, total_weight


def _linked(ctx, chunk: bytes):
    """The serialized CKKS vector `chunk`, linked to `ctx` (public or secret context)."""
    import tenseal as ts

    vec = ts.lazy_ckks_vector_from(chunk)
    vec.link_context(ctx)
    return vec


def encrypt_model(public_ctx, values: np.ndarray) -> EncryptedUpdate:
    """The coordinator's Enc([v..., 0]) of a plain model (the public key encrypts; no secret
    key needed), brought to the level of a weighted step (`step_model`) so the two add."""
    import tenseal as ts

    x = np.asarray(values, dtype=np.float64).ravel()
    if not np.isfinite(x).all():
        raise HeError("the model to encrypt has non-finite values")
    plain = np.concatenate([x, [0.0]])
    chunks = tuple(
        (ts.ckks_vector(public_ctx, plain[i : i + SLOTS].tolist()) * 1.0).serialize()
        for i in range(0, plain.size, SLOTS)
    )
    return EncryptedUpdate(chunks, int(x.size))


def step_model(
    public_ctx, model: EncryptedUpdate, updates: Sequence[EncryptedUpdate], total_weight: float
) -> EncryptedUpdate:
    """One FedAvg step on ciphertexts: Enc(v) + (Σ Enc([wᵢΔᵢ, wᵢ])) / W, with the public
    context only. W is the round's total weight, known to the coordinator (the number of
    sites, or the sum of the counts they reveal); the last slot then grows by Σwᵢ/W = 1 per
    round, which the sites check (`decrypt_model`). One ciphertext per chunk, whatever the
    number of rounds (the multiplication by 1/W uses one CKKS level, once: sums stay there)."""
    if not (total_weight > 0 and np.isfinite(total_weight)):
        raise HeError(f"total weight {total_weight} must be finite and > 0")
    total = add_encrypted(public_ctx, updates)
    if total.length != model.length or len(total.chunks) != len(model.chunks):
        raise HeError(
            f"encrypted updates of {total.length} values cannot move a model of {model.length}"
        )
    chunks = tuple(
        (_linked(public_ctx, m) + _linked(public_ctx, s) * (1.0 / total_weight)).serialize()
        for m, s in zip(model.chunks, total.chunks, strict=True)
    )
    return EncryptedUpdate(chunks, model.length)


def decrypt_model(secret_ctx, model: EncryptedUpdate) -> tuple[np.ndarray, float]:
    """A site's step: (v, steps) from Enc([v..., steps]); steps counts the FedAvg steps
    since the model was encrypted (1 per round when the coordinator divided by the true W)."""
    plain = _decrypt(secret_ctx, model)
    return plain[:-1], float(plain[-1])


def _decrypt(secret_ctx, encrypted: EncryptedUpdate) -> np.ndarray:
    """All `length + 1` slots of `encrypted` (the values, then the weight or step slot)."""
    if not secret_ctx.is_private():
        raise HeError("decrypting needs the sites' context with the secret key")
    values: list[float] = []
    for chunk in encrypted.chunks:
        values.extend(_linked(secret_ctx, chunk).decrypt())
    plain = np.asarray(values, dtype=np.float64)
    if plain.size != encrypted.length + 1:
        raise HeError(f"decrypted {plain.size} values, expected {encrypted.length + 1}")
    return plain
