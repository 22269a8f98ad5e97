"""Mask expansion: a ChaCha20 keystream keyed by a 32-byte secret, read as uint32/uint64 words.

Every key is used for one stream only (self-mask seeds are fresh per round, pairwise keys are
derived per run, round and pair), so the nonce is fixed at zero. Masks are uniform mod 2^w
because the keystream is (computationally) uniform bytes; no 32-bit seed folding anywhere.
"""

from __future__ import annotations

import numpy as np
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms

from components.secagg.errors import SecAggError

SEED_BYTES = 32
_NONCE = bytes(16)  # ChaCha20 in `cryptography`: 4-byte counter + 12-byte nonce, all zero
DTYPES = {32: np.uint32, 64: np.uint64}


def word_dtype(modulus_bits: int) -> type[np.unsignedinteger]:
    """The numpy word type of arithmetic mod 2^modulus_bits (32 or 64)."""
    if modulus_bits not in DTYPES:
        raise SecAggError(f"modulus 2^{modulus_bits} unsupported: use 2^32 or 2^64")
    return DTYPES[modulus_bits]


def mask(seed: bytes, length: int, modulus_bits: int) -> np.ndarray:
    """`length` words mod 2^modulus_bits from the ChaCha20 keystream keyed by `seed`
    (little-endian words, written straight into the returned array)."""
    if len(seed) != SEED_BYTES:
        raise SecAggError(f"mask seed must be {SEED_BYTES} bytes, got {len(seed)}")
    dtype = np.dtype(word_dtype(modulus_bits)).newbyteorder("<")
    out = np.empty(length, dtype=dtype)
    zeros = np.zeros(out.nbytes, dtype=np.uint8)
    stream = Cipher(algorithms.ChaCha20(seed, _NONCE), mode=None).encryptor()
    stream.update_into(zeros, out.view(np.uint8))
    return out if dtype.isnative else out.astype(dtype.newbyteorder("="))
