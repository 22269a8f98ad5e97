"""Fixed-point quantization whose sum over n sites cannot overflow mod 2^w (pure).

A value x is clipped to [-clip, clip] and mapped to the integer round((x + clip) * scale) in
[0, 2^bits - 1], scale = (2^bits - 1) / (2 clip). The sum of n such integers is at most
n (2^bits - 1), which stays below 2^w when bits <= w - ceil(log2 n): arithmetic mod 2^w then
gives the exact integer sum, and the float sum is sum / scale - n clip (error <= n / (2 scale)
from rounding, plus whatever clipping removed).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from components.secagg.errors import SecAggError
from components.secagg.prg import word_dtype

MAX_BITS = 52  # beyond float64's mantissa more levels add nothing


def max_bits(num_sites: int, modulus_bits: int) -> int:
    """The most bits per value that keep the sum of `num_sites` values below 2^modulus_bits."""
    if num_sites < 1:
        raise SecAggError(f"number of sites {num_sites} must be >= 1")
    word_dtype(modulus_bits)
    return min(MAX_BITS, modulus_bits - math.ceil(math.log2(num_sites)))


@dataclass(frozen=True)
class Quantizer:
    """clip: values are clipped to [-clip, clip]; bits: levels per value (2^bits - 1 steps);
    modulus_bits: 32 or 64; num_sites: how many quantized vectors may be summed."""

    clip: float
    bits: int
    modulus_bits: int
    num_sites: int

    def __post_init__(self) -> None:
        if not (self.clip > 0 and math.isfinite(self.clip)):
            raise SecAggError(f"quantization clip {self.clip} must be a finite number > 0")
        limit = max_bits(self.num_sites, self.modulus_bits)
        if not 1 <= self.bits <= limit:
            raise SecAggError(
                f"{self.bits} bits per value: the sum of {self.num_sites} values would overflow "
                f"mod 2^{self.modulus_bits} (at most {limit} bits)"
            )

    @staticmethod
    def for_sum(num_sites: int, clip: float, modulus_bits: int = 32) -> Quantizer:
        """The finest quantizer whose sum over `num_sites` cannot overflow."""
        return Quantizer(clip, max_bits(num_sites, modulus_bits), modulus_bits, num_sites)

    @property
    def scale(self) -> float:
        return (2**self.bits - 1) / (2.0 * self.clip)

    @property
    def dtype(self) -> type[np.unsignedinteger]:
        return word_dtype(self.modulus_bits)

    def quantize(self, values: np.ndarray) -> np.ndarray:
        """Words in [0, 2^bits - 1] (dtype of the modulus); NaN refused."""
        x = np.asarray(values, dtype=np.float64).ravel()
        if not np.isfinite(x).all():
            raise SecAggError("cannot quantize a vector with NaN or infinite values")
        levels = np.rint((np.clip(x, -self.clip, self.clip) + self.clip) * self.scale)
        return levels.astype(np.uint64).astype(self.dtype)

    def dequantize_sum(self, total: np.ndarray, count: int) -> np.ndarray:
        """The float sum of `count` vectors from the integer sum of their quantized words."""
        if not 1 <= count <= self.num_sites:
            raise SecAggError(f"sum of {count} vectors: must be 1..{self.num_sites}")
        return np.asarray(total, dtype=np.float64) / self.scale - count * self.clip
