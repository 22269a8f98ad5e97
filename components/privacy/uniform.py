"""Uniform random sources for the noise and sampling samplers (DP-SGD's Poisson sampling,
Skellam noise): the OS CSPRNG in production, a seeded generator in tests and simulation.

A source is a callable `n -> n floats in [0, 1)`, injected so that the samplers stay pure.
"""

from __future__ import annotations

import os
from collections.abc import Callable

import numpy as np

Uniform = Callable[[int], np.ndarray]


def os_uniform(n: int) -> np.ndarray:
    """n uniform floats in [0, 1) with 53 random bits each from the OS CSPRNG (production)."""
    words = np.frombuffer(os.urandom(8 * n), dtype=np.uint64) >> np.uint64(11)
    return words.astype(np.float64) * 2.0**-53


def seeded_uniform(seed: int) -> Uniform:
    """Reproducible uniforms (numpy PCG64 seeded by `seed`): tests and simulation only."""
    return np.random.default_rng(seed).random
