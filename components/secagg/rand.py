"""Injected randomness: `RandomBytes(n) -> n bytes`; the OS CSPRNG in production, a seeded
stream in tests only."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable

RandomBytes = Callable[[int], bytes]

os_random: RandomBytes = os.urandom


def seeded_random(seed: int | str) -> RandomBytes:
    """Deterministic bytes (SHAKE-256 of the seed, read on): tests and simulation only."""
    state = {"offset": 0}
    key = f"fedpipe-secagg-test-seed:{seed}".encode()

    def take(n: int) -> bytes:
        start = state["offset"]
        state["offset"] = start + n
        return hashlib.shake_256(key).digest(start + n)[start:]

    return take
