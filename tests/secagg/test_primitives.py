"""SecAgg+ building blocks: quantization bounds, Shamir, the mask stream, uniform masked bytes."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from components.secagg.errors import SecAggError
from components.secagg.prg import mask
from components.secagg.quantize import Quantizer, max_bits
from components.secagg.rand import seeded_random
from components.secagg.shamir import PRIME, combine, split
from tests.support.secagg import run_round, setup


def test_bits_keep_the_sum_of_n_below_the_modulus() -> None:
    assert max_bits(1, 32) == 32 - 0 and max_bits(3, 32) == 30 and max_bits(10, 32) == 28
    assert max_bits(1024, 32) == 22 and max_bits(1025, 32) == 21 and max_bits(10, 64) == 52
    for n in (1, 2, 3, 10, 100, 1000, 1025):
        b = max_bits(n, 32)
        assert n * (2**b - 1) < 2**32  # the bound the docstring claims
    with pytest.raises(SecAggError, match="sum of 10 values would overflow mod 2\\^32"):
        Quantizer(1.0, 29, 32, 10)
    q = Quantizer.for_sum(10, clip=1.0)
    top = q.quantize(np.full(5, 7.0))  # clipped to the top level
    assert int(top[0]) == 2**28 - 1
    total = top.astype(np.uint32) * np.uint32(10)  # ten sites at the top: no wrap
    assert int(total[0]) == 10 * (2**28 - 1) < 2**32
    with pytest.raises(SecAggError, match="NaN"):
        q.quantize(np.array([np.nan]))


def test_quantization_round_trip_within_half_a_step() -> None:
    q = Quantizer.for_sum(3, clip=0.5)
    x = np.linspace(-0.5, 0.5, 101)
    back = q.dequantize_sum(q.quantize(x), 1)
    assert np.max(np.abs(back - x)) <= 0.5 / q.scale + 1e-15


def test_shamir_any_t_shares_reconstruct_fewer_do_not() -> None:
    rand = seeded_random("shamir")
    secret = rand(32)
    shares = split(secret, [2, 5, 7, 9, 11], 3, rand)
    assert combine(shares[:3], 3) == secret
    assert combine([shares[4], shares[1], shares[2]], 3) == secret
    with pytest.raises(SecAggError, match="2 share\\(s\\) cannot reconstruct"):
        combine(shares[:2], 3)
    # hand check with t = 2 (a line): f(x) = s + a x mod p
    line = split(bytes(31) + b"\x07", [1, 2], 2, rand)
    slope = (line[1].y - line[0].y) % PRIME
    assert (line[0].y - slope) % PRIME == 7


def test_mask_stream_is_deterministic_per_key_and_differs_across_keys() -> None:
    k1, k2 = bytes(32), bytes(31) + b"\x01"
    a, b = mask(k1, 1000, 32), mask(k1, 1000, 32)
    assert a.dtype == np.uint32 and np.array_equal(a, b)
    assert not np.array_equal(a, mask(k2, 1000, 32))
    assert np.array_equal(mask(k1, 10, 64).view(np.uint32), mask(k1, 20, 32))  # one stream
    # RFC 8439 section 2.4.2 test vector is for a non-zero nonce; with key 0, nonce 0 the
    # first keystream bytes are the well-known 76b8e0ad a0f13d90 (RFC 7539 A.1 #1)
    assert a[:2].tobytes().hex() == "76b8e0ada0f13d90"
    with pytest.raises(SecAggError, match="32 bytes"):
        mask(b"short", 4, 32)


def test_a_masked_update_alone_is_indistinguishable_from_uniform_bytes() -> None:
    n = 10
    fed = setup(n, 4, 3, seed=3)
    quantizer = Quantizer.for_sum(n, clip=0.2)
    # a very structured update: all zeros (every word the same level)
    vectors = [np.zeros(50_000) for _ in range(n)]
    _, _, masked, quantized = run_round(fed, vectors, quantizer)
    one = masked["site-04"].tobytes()
    counts = np.bincount(np.frombuffer(one, dtype=np.uint8), minlength=256)
    assert stats.chisquare(counts).pvalue > 1e-3  # bytes uniform over 0..255
    bits = np.unpackbits(np.frombuffer(one, dtype=np.uint8))
    assert abs(bits.mean() - 0.5) < 4 * 0.5 / np.sqrt(bits.size)  # bits balanced
    # pairs of consecutive words uncorrelated
    words = masked["site-04"].astype(np.float64)
    assert abs(np.corrcoef(words[:-1], words[1:])[0, 1]) < 4 / np.sqrt(words.size)
    # the same test rejects the unmasked update: the test has power
    plain = np.bincount(np.frombuffer(quantized["site-04"].tobytes(), np.uint8), minlength=256)
    assert stats.chisquare(plain).pvalue < 1e-10
