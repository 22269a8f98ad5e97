"""Krum internals by hand: Gram matrix and column sums, the common-component protection, and
when Multi-Krum's mean is finished from the column sums instead of re-reading the selected."""

from __future__ import annotations

import numpy as np
import pytest

from components.aggregation import krum, rules
from components.aggregation.rules import aggregate
from components.aggregation.updates import check_updates


def as_updates(rows, name="w"):
    return [{name: np.asarray(r, dtype=np.float32)} for r in rows]


def gram_and_sums(ups):
    layout = check_updates(ups)
    sums = {
        n: np.full(int(np.prod(s)), np.nan, np.float32)
        for n, s in zip(layout.names, layout.shapes, strict=True)
    }
    return krum.gram_matrix(ups, layout, sums), sums


def test_gram_and_column_sums_by_hand_over_two_tensors():
    # d1 = u1 - u0 = w[2, 3] b[0], d2 = u2 - u0 = w[-1, 0] b[2]
    ups = [
        {"w": np.float32([1, 2]), "b": np.float32([4])},
        {"w": np.float32([3, 5]), "b": np.float32([4])},
        {"w": np.float32([0, 2]), "b": np.float32([6])},
    ]
    gram, sums = gram_and_sums(ups)
    np.testing.assert_array_equal(gram, [[0, 0, 0], [0, 13, -2], [0, -2, 5]])
    np.testing.assert_array_equal(sums["w"], [1, 3])  # 0 + 2 - 1, 0 + 3 + 0
    np.testing.assert_array_equal(sums["b"], [2])
    dist = krum.squared_distances(gram)
    np.testing.assert_array_equal(dist, [[0, 13, 5], [13, 0, 22], [5, 22, 0]])  # 13+5+2·2


@pytest.mark.parametrize("k", [5, 18, 20])  # gemv path (K ≤ 16); syrk, 3 and 1 zero rows
def test_gram_and_column_sums_over_several_partial_blocks(monkeypatch, k):
    # x_i = i·v: d_i = i·v, G_ij = i·j·|v|², column sums (0 + 1 + … + K-1)·v; small budget ->
    # 960-column blocks, 3000 = 3·960 + 120 (the last one reshapes the buffer).
    monkeypatch.setattr(krum, "GRAM_BLOCK_BYTES", 1)
    v = (np.arange(3000) % 7 - 3).astype(np.float32)
    gram, sums = gram_and_sums(as_updates([i * v for i in range(k)]))
    i = np.arange(k, dtype=np.float64)
    np.testing.assert_array_equal(gram, np.outer(i, i) * float(v @ v))
    np.testing.assert_array_equal(sums["w"], k * (k - 1) // 2 * v)


def test_distances_stay_exact_under_a_large_common_component():
    # Every update is 1000 + c/128 (spread ≈ 1e-2, offset 1e3, all exact in float32), so
    # |x_i - x_j|² = Σ (c_i - c_j)² / 128² by hand: c rows 0, 1, 2, 0 and -1 (each times a
    # ±1 pattern over 4000 coordinates) give |x_i - x_j|² = (a_i - a_j)² · 4000 / 16384.
    pattern = np.where(np.arange(4000) % 2 == 0, 1, -1).astype(np.float32)
    a = np.array([0, 1, 2, 0, -1], dtype=np.float64)
    ups = as_updates([np.float32(1000) + np.float32(ai / 128) * pattern for ai in a])
    gram, _ = gram_and_sums(ups)
    expected = (a[:, None] - a[None, :]) ** 2 * 4000 / 16384
    np.testing.assert_array_equal(krum.squared_distances(gram), expected)
    # Without taking the updates relative to update 0, float32 products of ~1e3 values lose
    # these ~0.24-sized distances entirely: the test above could fail.
    x = np.stack([u["w"] for u in ups])
    raw = x @ x.T
    naive = np.diag(raw)[:, None] + np.diag(raw)[None, :] - 2 * raw
    assert np.abs(naive - expected).max() > 1.0


def test_sums_shortcut_guard_by_hand():
    def dist(points):
        p = np.asarray(points, dtype=np.float64)
        return (p[:, None] - p[None, :]) ** 2

    # selected {0,1,2,3}: diameter 3, farthest update from x0 = 4 ≤ 4·3
    assert krum.mean_from_sums_is_accurate(dist([0, 1, 2, 3, 4]), [0, 1, 2, 3])
    # a rejected outlier at 100 > 12
    assert not krum.mean_from_sums_is_accurate(dist([0, 1, 2, 3, 100]), [0, 1, 2, 3])
    # x0 itself the outlier: 50 from the selected {1..4} (diameter 3)
    assert not krum.mean_from_sums_is_accurate(dist([50, 0, 1, 2, 3]), [1, 2, 3, 4])
    # identical updates: diameter 0, every distance 0
    assert krum.mean_from_sums_is_accurate(dist([7, 7, 7, 7, 7]), [0, 1, 2, 3])
    # an overflowed Gram (inf, NaN distances) never takes the shortcut
    overflowed = dist([0, 1, 2, 3, 4])
    overflowed[0, 3] = overflowed[3, 0] = np.inf
    assert not krum.mean_from_sums_is_accurate(overflowed, [0, 1, 2, 3])
    overflowed[0, 3] = overflowed[3, 0] = np.nan
    assert not krum.mean_from_sums_is_accurate(overflowed, [0, 1, 2, 3])


@pytest.fixture
def direct_sums(monkeypatch):
    """Records the update lists rules.linear_combination (the direct mean) is called with."""
    calls: list[int] = []
    original = rules.linear_combination

    def recording(updates, layout, coeffs):
        calls.append(len(updates))
        return original(updates, layout, coeffs)

    monkeypatch.setattr(rules, "linear_combination", recording)
    return calls


LINE = [*range(19), 50]  # K = 20 (the syrk path): 0, 1, …, 18 and a rejected 50


def test_multi_krum_mean_from_column_sums(direct_sums):
    # f=1, m=19: the 17 nearest of 50 are 32..48 away, of any point on the line ≤ 18 -> 50 is
    # rejected; 50 ≤ 4 · diameter 18, so the mean is finished from the column sums:
    # 0 + (Σ d = 171 + 50 - rejected 50) / 19 = 9, without summing the selected again.
    ups = [{"w": np.float32([x, -2 * x]), "b": np.float32([x])} for x in LINE]
    out = aggregate(ups, "multi_krum", f=1)
    np.testing.assert_array_equal(out["w"], np.float32([9, -18]))
    np.testing.assert_array_equal(out["b"], np.float32([9]))
    assert direct_sums == []
    # Krum (m = 1 ≤ K/2) reads its one update directly: 8, 9 and 10 tie at
    # 2·(1² + … + 8²) + 9² = 489 (7 scores 2·(1² + … + 7²) + 8² + 9² + 10² = 525), lowest index.
    np.testing.assert_array_equal(aggregate(ups, "krum", f=1)["b"], np.float32([8]))
    assert direct_sums == [1]


def test_multi_krum_mean_from_column_sums_under_a_large_common_component(direct_sums):
    # (1000 + c/128, 1000 - c/128) for c on LINE: mean of the kept = 1000 ± 9/128, exact.
    ups = as_updates([[1000 + c / 128, 1000 - c / 128] for c in LINE])
    out = aggregate(ups, "multi_krum", f=1)
    np.testing.assert_array_equal(out["w"], np.float32([1000 + 9 / 128, 1000 - 9 / 128]))
    assert direct_sums == []


def test_multi_krum_sums_the_selected_when_a_rejected_update_is_far(direct_sums):
    # 0.25, 0.5, …, 4.75 and an outlier 3e8 that dominates the float32 column sums (ulp 32
    # there): finishing from them would lose the 0.25 steps, so the guard sends Multi-Krum
    # to the direct mean of the 19 selected: 0.25 · 190 / 19 = 2.5.
    ups = as_updates([[0.25 * i] for i in range(1, 20)] + [[3e8]])
    np.testing.assert_array_equal(aggregate(ups, "multi_krum", f=1)["w"], np.float32([2.5]))
    assert direct_sums == [19]
    gram, sums = gram_and_sums(ups)
    shortcut = rules.mean_from_column_sums(ups, check_updates(ups), sums, list(range(19)))
    assert shortcut["w"][0] != np.float32(2.5)  # what the guard protects against


def test_multi_krum_of_all_zero_updates_from_column_sums(direct_sums):
    with np.errstate(all="raise"):
        out = aggregate(as_updates([[0, 0]] * 20), "multi_krum", f=3)
    np.testing.assert_array_equal(out["w"], np.float32([0, 0]))
    assert direct_sums == []


def test_multi_krum_with_few_updates_sums_the_selected(direct_sums):
    # K ≤ GEMV_MAX_K: no column sums (measured no faster); 0..3 kept of 0, 1, 2, 3, 4.
    ups = as_updates([[x] for x in range(5)])
    np.testing.assert_array_equal(aggregate(ups, "multi_krum", f=1)["w"], np.float32([1.5]))
    assert direct_sums == [4]
