"""Sorting networks and column-block order statistics against plain sorting."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from components.aggregation.order_stats import (
    batcher_network,
    extremes_network,
    median_into,
    pruned_network,
    trimmed_sum_into,
)
from components.aggregation.rules import aggregate
from components.aggregation.updates import check_updates, column_blocks


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5, 7, 8, 10, 13])
def test_batcher_network_sorts_every_zero_one_input(n):
    # 0-1 principle: a comparator network sorts all inputs iff it sorts all 0/1 inputs.
    net = batcher_network(n)
    for bits in itertools.product((0, 1), repeat=n):
        x = list(bits)
        for a, b in net:
            if x[a] > x[b]:
                x[a], x[b] = x[b], x[a]
        assert x == sorted(bits)


def test_hand_counted_network_sizes_and_pruning():
    assert batcher_network(2) == [(0, 1)]
    # 4-wire network (0,1) (2,3) (0,2) (1,3) (1,2) without the pairs touching wire 3
    assert batcher_network(3) == [(0, 1), (0, 2), (1, 2)]
    assert len(batcher_network(4)) == 5
    # rank 0 of 2 wires only needs the min of the one comparator
    assert pruned_network(2, (0,)) == ((0, 1, True, False),)
    # the median of 3: max of (0,2) and min of (1,2) only
    assert pruned_network(3, (1,)) == ((0, 1, True, True), (0, 2, False, True), (1, 2, True, False))
    # the minimum of 3 needs just two mins
    assert pruned_network(3, (0,)) == ((0, 1, True, False), (0, 2, True, False))


def test_extremes_network_by_hand_and_on_random_ties():
    # 4 wires, trim 1: pair (0,3) (1,2); max chain into wire 2; min chain into wire 0.
    t = (True, True)
    comps, kept = extremes_network(4, 1)
    assert comps == ((0, 3, *t), (1, 2, *t), (3, 2, *t), (0, 1, *t))
    assert kept == (1, 3)
    rng = np.random.default_rng(0)
    for n in range(1, 25):
        for trim in range((n - 1) // 2 + 1):
            comps, kept = extremes_network(n, trim)
            for _ in range(20):
                x = list(rng.integers(0, 3, n))
                y = list(x)
                for a, b, _, _ in comps:
                    y[a], y[b] = min(y[a], y[b]), max(y[a], y[b])
                assert sorted(y[w] for w in kept) == sorted(x)[trim : n - trim]


@pytest.mark.parametrize("method", ["network", "sort"])
@pytest.mark.parametrize("k", [1, 2, 3, 4, 5, 9, 10, 16, 17, 33, 40])
def test_median_and_trimmed_sum_match_sorting(method, k):
    rng = np.random.default_rng(k)
    # small integers: many ties, and float32 sums are exact
    block = rng.integers(-5, 6, size=(k, 301)).astype(np.float32)
    expected = np.sort(block, axis=0)
    out = np.empty(301, np.float32)
    median_into(block.copy(), out, method)
    np.testing.assert_array_equal(out, np.median(block, axis=0))
    for trim in range((k - 1) // 2 + 1):
        trimmed_sum_into(block.copy(), trim, out, method)
        np.testing.assert_array_equal(out, expected[trim : k - trim].sum(axis=0))


def test_column_blocks_cover_every_tensor_with_partial_blocks():
    ups = [
        {"a": np.arange(10, dtype=np.float32) + i, "b": np.full((2, 3), i, np.float32)}
        for i in range(3)
    ]
    seen = [(n, s, e, blk.copy()) for n, s, e, blk in column_blocks(ups, check_updates(ups), 4)]
    assert [(n, s, e) for n, s, e, _ in seen] == [
        ("a", 0, 4),
        ("a", 4, 8),
        ("a", 8, 10),
        ("b", 0, 4),
        ("b", 4, 6),
    ]
    np.testing.assert_array_equal(seen[2][3], [[8, 9], [9, 10], [10, 11]])
    assert seen[2][3].flags.c_contiguous


@pytest.mark.parametrize("k", [7, 12, 50])
def test_rules_on_large_random_updates_match_numpy(k):
    rng = np.random.default_rng(7)
    ups = [
        {
            "k": rng.standard_normal((30, 1111), dtype=np.float32),
            "b": rng.standard_normal(5, dtype=np.float32),
        }
        for _ in range(k)
    ]
    stack = {n: np.stack([u[n] for u in ups]) for n in ("k", "b")}
    med = aggregate(ups, "median")
    trim = aggregate(ups, "trimmed_mean", beta=0.2)
    mean = aggregate(ups, "fedavg")
    t = int(0.2 * k)
    for n, x in stack.items():
        np.testing.assert_array_equal(med[n], np.median(x, axis=0))
        np.testing.assert_allclose(trim[n], np.sort(x, axis=0)[t : k - t].mean(axis=0), atol=1e-5)
        np.testing.assert_allclose(mean[n], x.mean(axis=0), atol=1e-5)
