"""Aggregation rules against hand-computed expectations, edge cases and refusals."""

from __future__ import annotations

import numpy as np
import pytest

from components.aggregation.krum import KrumConfigError
from components.aggregation.rules import AggregationError, aggregate, multi_krum_selection
from components.aggregation.updates import UpdateShapeError


def upd(w, b=None) -> dict[str, np.ndarray]:
    """An update with tensor 'w' (and 'b' when given), float32."""
    out = {"w": np.asarray(w, dtype=np.float32)}
    if b is not None:
        out["b"] = np.asarray(b, dtype=np.float32)
    return out


def eq(result, **expected) -> None:
    assert set(result) == set(expected)
    for name, value in expected.items():
        assert result[name].dtype == np.float32
        np.testing.assert_array_equal(result[name], np.asarray(value, dtype=np.float32))


# --- fedavg ---------------------------------------------------------------------------------


def test_fedavg_unweighted_mean_keeps_names_and_shapes():
    ups = [upd([[1, 2], [3, 4]], [1]), upd([[3, 6], [5, 0]], [2]), upd([[2, 1], [1, 2]], [6])]
    eq(aggregate(ups, "fedavg"), w=[[2, 3], [3, 2]], b=[3])


def test_fedavg_weighted_by_example_counts():
    # (1·[1,2] + 3·[3,4]) / 4 = [2.5, 3.5]
    eq(aggregate([upd([1, 2]), upd([3, 4])], "fedavg", weights=[1, 3]), w=[2.5, 3.5])


def test_fedavg_zero_weight_site_contributes_nothing():
    eq(aggregate([upd([1, 2]), upd([100, 100])], "fedavg", weights=[5, 0]), w=[1, 2])


def test_fedavg_single_update_and_all_zero_updates():
    eq(aggregate([upd([1.5, -2])], "fedavg"), w=[1.5, -2])
    eq(aggregate([upd([0, 0]), upd([0, 0])], "fedavg"), w=[0, 0])


@pytest.mark.parametrize(
    ("weights", "message"),
    [
        ([0, 0], "sum to zero"),
        ([1, -1], "negative or non-finite"),
        ([1, float("nan")], "negative or non-finite"),
        ([1, 2, 3], "expected 2 values"),
    ],
)
def test_fedavg_refuses_bad_weights(weights, message):
    with pytest.raises(AggregationError, match=message):
        aggregate([upd([1]), upd([2])], "fedavg", weights=weights)


# --- median ---------------------------------------------------------------------------------


def test_median_odd_and_even_k():
    ups = [upd([1, 9, -1]), upd([5, 2, -3]), upd([3, 4, -2])]
    eq(aggregate(ups, "median"), w=[3, 4, -2])
    ups.append(upd([10, 0, 7]))  # columns sorted: [1,3,5,10] [0,2,4,9] [-3,-2,-1,7]
    eq(aggregate(ups, "median"), w=[4, 3, -1.5])


def test_median_ties_and_single_update():
    eq(aggregate([upd([2, 2]), upd([2, 7]), upd([2, 7]), upd([1, 7])], "median"), w=[2, 7])
    eq(aggregate([upd([4, -4])], "median"), w=[4, -4])


def test_median_ignores_one_huge_outlier():
    ups = [upd([1, 1]), upd([2, 2]), upd([3, 3]), upd([-1e30, 1e30])]
    eq(aggregate(ups, "median"), w=[1.5, 2.5])


# --- trimmed mean ---------------------------------------------------------------------------


def test_trimmed_mean_drops_extremes_per_coordinate():
    # K=5, beta=0.2 -> trim 1 per side. Column 0: [1,2,3,4,100] -> (2+3+4)/3 = 3;
    # column 1: [-50,0,6,6,9] -> (0+6+6)/3 = 4.
    ups = [upd([1, 6]), upd([100, -50]), upd([3, 0]), upd([2, 9]), upd([4, 6])]
    eq(aggregate(ups, "trimmed_mean", beta=0.2), w=[3, 4])


def test_trimmed_mean_with_no_trim_is_the_mean_and_refuses_bad_beta():
    ups = [upd([1]), upd([2]), upd([6])]
    eq(aggregate(ups, "trimmed_mean", beta=0.1), w=[3])  # floor(0.3) = 0 trimmed
    with pytest.raises(AggregationError, match=r"beta must be in \[0, 0.5\)"):
        aggregate(ups, "trimmed_mean", beta=0.5)


def test_trimmed_mean_trim_count_is_floor_of_beta_k_without_float_artefacts():
    # 0.29 · 100 = 28.999999999999996 in floating point: still 29 trimmed per side, so the
    # mean of i² over ranks 29..70 (28 trimmed would average ranks 28..71).
    ups = [upd([float(i * i)]) for i in range(100)]
    expected = sum(i * i for i in range(29, 71)) / 42
    out = aggregate(ups, "trimmed_mean", beta=0.29)
    np.testing.assert_allclose(out["w"], [expected], rtol=1e-6)


def test_trimmed_mean_of_identical_and_zero_updates():
    eq(aggregate([upd([0, 0])] * 5, "trimmed_mean", beta=0.2), w=[0, 0])
    eq(aggregate([upd([7, -1])] * 4, "trimmed_mean", beta=0.25), w=[7, -1])


# --- Krum / Multi-Krum ----------------------------------------------------------------------


def line_updates():
    """Five 1-D updates at 0, 1, 2, 3 and 100 (an outlier)."""
    return [upd([x]) for x in (0, 1, 2, 3, 100)]


def test_krum_picks_the_most_central_update():
    # K=5, f=1: score = sum of squared distances to the K-f-2 = 2 nearest others.
    # 0: 1+4=5, 1: 1+1=2, 2: 1+1=2, 3: 1+4=5, 100: 97²+98² -> tie 1 vs 2, lower index wins.
    assert multi_krum_selection(line_updates(), f=1, m=1) == [1]
    eq(aggregate(line_updates(), "krum", f=1), w=[1])


def test_multi_krum_averages_the_m_best():
    assert multi_krum_selection(line_updates(), f=1) == [0, 1, 2, 3]  # m = K - f
    eq(aggregate(line_updates(), "multi_krum", f=1), w=[1.5])
    eq(aggregate(line_updates(), "multi_krum", f=1, m=2), w=[1.5])


def test_krum_ties_and_zero_updates():
    ups = [upd([0, 0])] * 5
    assert multi_krum_selection(ups, f=1, m=2) == [0, 1]
    eq(aggregate(ups, "multi_krum", f=1, m=3), w=[0, 0])


def test_krum_distances_use_every_tensor():
    # 'w' alone: scores (2 nearest) 1+1, 1+4, 1+1, 1+1, 1+4 -> tie of 0, 2, 3, lowest index 0.
    ws = (1, 0, 2, 3, 4)
    assert multi_krum_selection([upd([x]) for x in ws], f=1, m=1) == [0]
    # 'b' moves update 0 far away: 2 scores 1+4, 3 scores 1+1 -> 3.
    ups = [upd([x], [50 if i == 0 else 0]) for i, x in enumerate(ws)]
    assert multi_krum_selection(ups, f=1, m=1) == [3]


@pytest.mark.parametrize(("k", "f"), [(4, 1), (6, 2), (2, 0), (1, 0)])
def test_krum_refuses_k_at_most_2f_plus_2(k, f):
    with pytest.raises(KrumConfigError, match=rf"K={k} .* needs K > 2f\+2 = {2 * f + 2}"):
        aggregate([upd([i]) for i in range(k)], "multi_krum", f=f)


def test_krum_refuses_bad_m_and_non_integer_f():
    with pytest.raises(KrumConfigError, match=r"m \(updates selected\) must be in \[1, 5\]"):
        aggregate(line_updates(), "multi_krum", f=1, m=6)
    with pytest.raises(AggregationError, match="must be an integer"):
        aggregate(line_updates(), "krum", f=1.5)


# --- norm-bounded mean ----------------------------------------------------------------------


def test_norm_bounded_mean_clips_over_all_tensors():
    # update 0: norm 5 (3,4 over two tensors) -> clipped to 1: (0.6, 0.8);
    # update 1: norm 0.5 -> unchanged. Mean: (0.6+0.3)/2, (0.8+0.4)/2.
    ups = [upd([3], [4]), upd([0.3], [0.4])]
    out = aggregate(ups, "norm_bounded_mean", clip_norm=1.0)
    np.testing.assert_allclose(out["w"], [0.45], rtol=1e-6)
    np.testing.assert_allclose(out["b"], [0.6], rtol=1e-6)


def test_norm_bounded_mean_zero_update_has_no_division_by_zero():
    with np.errstate(all="raise"):
        out = aggregate([upd([0, 0]), upd([0, 0])], "norm_bounded_mean", clip_norm=1.0)
    eq(out, w=[0, 0])
    with np.errstate(all="raise"):
        out = aggregate([upd([0, 0]), upd([6, 8])], "norm_bounded_mean", clip_norm=5.0)
    eq(out, w=[1.5, 2])


def test_norm_bounded_mean_weighted_and_huge_values():
    # weights 1:3, update 1 clipped from norm 10 to 2 -> [0, 2]; (1·[1,0] + 3·[0,2]) / 4.
    out = aggregate([upd([1, 0]), upd([0, 10])], "norm_bounded_mean", [1, 3], clip_norm=2.0)
    np.testing.assert_allclose(out["w"], [0.25, 1.5], rtol=1e-6)
    # squares of 1e30 overflow float32: the norm is still found and the update clipped.
    out = aggregate([upd([1e30, 1e30])], "norm_bounded_mean", clip_norm=np.sqrt(2))
    np.testing.assert_allclose(out["w"], [1, 1], rtol=1e-5)


def test_norm_bounded_mean_refuses_bad_clip():
    with pytest.raises(AggregationError, match="clip_norm must be > 0"):
        aggregate([upd([1])], "norm_bounded_mean", clip_norm=0.0)


# --- refusals common to every rule ----------------------------------------------------------


@pytest.mark.parametrize(
    ("rule", "params"),
    [
        ("fedavg", {}),
        ("median", {}),
        ("trimmed_mean", {"beta": 0.2}),
        ("multi_krum", {"f": 0}),
        ("norm_bounded_mean", {"clip_norm": 1.0}),
        ("geometric_median", {}),
        ("centred_clipping", {}),
        ("screened_geometric_median", {}),
    ],
)
def test_every_rule_refuses_mismatched_updates(rule, params):
    good = [upd([1, 2], [0]), upd([1, 2], [0]), upd([1, 2], [0])]
    with pytest.raises(UpdateShapeError, match=r"update 2: tensor 'w' has shape \(3,\)"):
        aggregate([*good[:2], upd([1, 2, 3], [0])], rule, **params)
    with pytest.raises(UpdateShapeError, match=r"update 1: tensor names differ.*missing \['b'\]"):
        aggregate([good[0], upd([1, 2]), good[2]], rule, **params)
    with pytest.raises(UpdateShapeError, match=r"update 1: tensor 'w' has dtype float64"):
        aggregate([good[0], {"w": np.zeros(2), "b": np.zeros(1, np.float32)}], rule, **params)
    with pytest.raises(UpdateShapeError, match="empty"):
        aggregate([], rule, **params)


def test_unknown_rule_parameters_and_weights_for_robust_rules_are_refused():
    ups = [upd([1]), upd([2]), upd([3])]
    with pytest.raises(AggregationError, match="unknown aggregation rule 'mode'"):
        aggregate(ups, "mode")
    with pytest.raises(AggregationError, match=r"unknown parameter\(s\) \['beta'\]"):
        aggregate(ups, "median", beta=0.1)
    with pytest.raises(AggregationError, match=r"missing required parameter\(s\) \['f'\]"):
        aggregate(ups, "krum")
    with pytest.raises(AggregationError, match="takes no weights"):
        aggregate(ups, "median", weights=[1, 1, 1])


def test_inputs_are_not_modified():
    ups = [upd([3, 1]), upd([1, 2]), upd([2, 3]), upd([0, 0]), upd([9, 9])]
    before = [u["w"].copy() for u in ups]
    rules = [("median", {}), ("trimmed_mean", {"beta": 0.2}), ("krum", {"f": 1})]
    rules += [("geometric_median", {}), ("centred_clipping", {})]
    rules += [("screened_geometric_median", {})]
    for rule, params in rules:
        aggregate(ups, rule, **params)
    for u, b in zip(ups, before, strict=True):
        np.testing.assert_array_equal(u["w"], b)


def brute_force_selection(ups, f, m):
    """Multi-Krum selection from float64 pairwise distances (the definition, no Gram)."""
    x = np.stack([np.concatenate([u[n].ravel() for n in sorted(u)]) for u in ups]).astype(
        np.float64
    )
    k = len(ups)
    d = ((x[:, None, :] - x[None, :, :]) ** 2).sum(axis=2)
    scores = [np.sort(np.delete(d[i], i))[: k - f - 2].sum() for i in range(k)]
    return sorted(np.argsort(scores, kind="stable")[:m].tolist())


@pytest.mark.parametrize("k", [7, 20])  # the gemv path (K ≤ 16) and the syrk path
def test_krum_selection_matches_the_definition_despite_a_large_common_component(k):
    # Full weights instead of deltas: every update shares a component 10⁴ times its spread.
    rng = np.random.default_rng(k)
    common = rng.normal(0, 1e4, size=3000).astype(np.float32)
    ups = [
        {"w": common + rng.normal(0, 1, 3000).astype(np.float32) * (1 + i % 3)} for i in range(k)
    ]
    ups[1] = {"w": common + np.float32(5)}  # one outlier
    f = (k - 3) // 2
    assert multi_krum_selection(ups, f=f, m=k - f) == brute_force_selection(ups, f, k - f)
    assert 1 not in multi_krum_selection(ups, f=f, m=k - f)


@pytest.mark.parametrize(
    ("rule", "params"),
    [
        ("fedavg", {}),
        ("median", {}),
        ("trimmed_mean", {"beta": 0.4}),
        ("norm_bounded_mean", {"clip_norm": 10.0}),
        ("geometric_median", {}),
        ("centred_clipping", {"tau": 0.5}),
        ("screened_geometric_median", {}),
    ],
)
def test_a_single_update_comes_back_unchanged(rule, params):
    eq(aggregate([upd([[1.5, -2]], [3])], rule, **params), w=[[1.5, -2]], b=[3])


@pytest.mark.parametrize(
    ("rule", "params"),
    [
        ("fedavg", {}),
        ("median", {}),
        ("trimmed_mean", {"beta": 0.2}),
        ("krum", {"f": 1}),
        ("multi_krum", {"f": 1}),
        ("norm_bounded_mean", {"clip_norm": 1.0}),
        ("geometric_median", {}),
        ("centred_clipping", {}),
        ("screened_geometric_median", {}),
    ],
)
def test_all_zero_updates_give_zero_without_warnings(rule, params):
    with np.errstate(all="raise"):
        eq(aggregate([upd([0, 0], [0])] * 5, rule, **params), w=[0, 0], b=[0])
