"""What a site sums under SecAgg+ for weighted FedAvg (pure): its update bounded in L2 norm at
the site (the coordinator cannot bound what it cannot see), multiplied by its weight, with the
weight appended, so the unmasked sum yields the weighted mean and the coordinator learns only
the total weight, never a single site's.

Range: with L2 norm <= `norm_bound` every coordinate of the update is in [-bound, bound], so
weight * update is in [-w_max bound, w_max bound] for weights <= `max_weight`; the quantizer
clips to that range (nothing is lost) and the weight slot in [0, w_max] fits it too.
"""

from __future__ import annotations

import math

import numpy as np

from components.secagg.errors import SecAggError
from components.secagg.quantize import Quantizer


def clip_l2(update: np.ndarray, norm_bound: float) -> np.ndarray:
    """`update` scaled down to L2 norm `norm_bound` when longer (unchanged otherwise)."""
    if not (norm_bound > 0 and math.isfinite(norm_bound)):
        raise SecAggError(f"norm bound {norm_bound} must be a finite number > 0")
    x = np.asarray(update, dtype=np.float64).ravel()
    norm = float(np.linalg.norm(x))
    return x if norm <= norm_bound else x * (norm_bound / norm)


def weighted_quantizer(
    num_sites: int, norm_bound: float, max_weight: float, modulus_bits: int = 32
) -> Quantizer:
    """The quantizer whose range holds every weight * clipped coordinate and the weight."""
    if not (max_weight > 0 and math.isfinite(max_weight)):
        raise SecAggError(f"max weight {max_weight} must be a finite number > 0")
    return Quantizer.for_sum(num_sites, norm_bound * max_weight, modulus_bits)


def encode_weighted(
    update: np.ndarray, weight: float, norm_bound: float, quantizer: Quantizer
) -> np.ndarray:
    """Quantized [weight * clip_l2(update), weight]; SecAggError for a weight outside range."""
    if not 0 < weight <= quantizer.clip / norm_bound * (1 + 1e-12):
        raise SecAggError(
            f"weight {weight} outside (0, {quantizer.clip / norm_bound:g}] of the quantizer"
        )
    plain = np.concatenate([clip_l2(update, norm_bound) * weight, [weight]])
    return quantizer.quantize(plain)


def decode_mean(total: np.ndarray, count: int, quantizer: Quantizer) -> tuple[np.ndarray, float]:
    """(weighted mean update, total weight) from the unmasked sum of `count` encodings."""
    summed = quantizer.dequantize_sum(total, count)
    total_weight = float(summed[-1])
    if not total_weight > 0:
        raise SecAggError(f"total weight {total_weight} is not positive")
    return summed[:-1] / total_weight, total_weight
