"""`federated_zscore` statistics: clipping, sensitivity, noise, accounting and the coordinator's
combination (expected values computed by hand in the comments)."""

from __future__ import annotations

import json
import math

import dp_accounting
import numpy as np
import pytest

from components.datasets.features import fit_scaler
from components.datasets.federated_stats import (
    STD_FLOOR_FRACTION,
    GlobalStats,
    SiteStats,
    StatsError,
    combine,
    noise_multiplier_for,
    noise_stds,
    sensitivity,
    site_statistics,
    stats_event,
    stats_ranges,
)
from components.domain.contract import DataContract, check_private_scaling
from components.privacy.accounting import rdp_epsilon


def _contract(**encoding) -> DataContract:
    return DataContract.parse_obj(
        {
            "apiVersion": "fedpipe.dev/v1",
            "kind": "DataContract",
            "name": "toy",
            "columns": [
                {"name": "a", "type": "float", "range": [0, 10]},  # c 5, h 5
                {"name": "k", "type": "category", "categories": ["x", "y"]},
                {"name": "b", "type": "int", "range": [-2, 2]},  # c 0, h 2
                {"name": "flag", "type": "bool"},
            ],
            "target": {"task": "binary", "classes": [0, 1]},
            "rows": {"min_train": 1, "min_holdout": 1},
            "encoding": encoding or {"scaling": "federated_zscore", "statistics": {"epsilon": 1.0}},
        }
    )


# model inputs: a, k=x, k=y, b, flag
SITE_A = np.array([[1.0, 1, 0, 2, 1], [9.0, 0, 1, -2, 0]])
SITE_B = np.array([[12.0, 1, 0, 0, 1]])  # a = 12 lies outside [0, 10]: clipped to 10


def test_ranges_are_the_numeric_inputs_in_input_order():
    r = stats_ranges(_contract())
    assert (r.index, r.names, r.low, r.high) == ((0, 3), ("a", "b"), (0.0, -2.0), (10.0, 2.0))
    assert r.center.tolist() == [5.0, 0.0] and r.half_width.tolist() == [5.0, 2.0]


def test_sensitivity_one_record_moves_each_sum_by_its_bound():
    s = sensitivity(stats_ranges(_contract()))
    # h = (5, 2): sum by h, sum of squares by h^2, count by 1; 2 inputs -> sqrt(2*2 + 1)
    assert s.sum == (5.0, 2.0) and s.sum_sq == (25.0, 4.0) and s.count == 1.0
    assert s.l2_normalized == pytest.approx(math.sqrt(5))
    # never above the raw-sum bounds: range width (10, 4) and max(|lo|,|hi|)^2 (100, 4)
    assert all(h <= w for h, w in zip(s.sum, (10.0, 4.0), strict=True))
    assert all(h <= m for h, m in zip(s.sum_sq, (100.0, 4.0), strict=True))


def test_adding_one_extreme_record_moves_the_exact_release_by_at_most_the_bounds():
    r = stats_ranges(_contract())
    base = site_statistics(SITE_A, r, site_id="s", noise_multiplier=0, rng=None)
    for row in ([100.0, 0, 0, -9, 0], [-100.0, 0, 0, 9, 0], [5.0, 0, 0, 0, 0]):
        more = site_statistics(
            np.vstack([SITE_A, row]), r, site_id="s", noise_multiplier=0, rng=None
        )
        moved = np.concatenate(
            [
                np.abs(np.subtract(more.sums, base.sums)) / [5.0, 2.0],
                np.abs(np.subtract(more.sums_sq, base.sums_sq)) / [25.0, 4.0],
                [abs(more.count - base.count)],
            ]
        )
        assert moved.max() <= 1.0 + 1e-12
        assert np.linalg.norm(moved) <= math.sqrt(5) + 1e-12


def test_exact_site_sums_are_clipped_and_centered():
    r = stats_ranges(_contract())
    s = site_statistics(np.vstack([SITE_A, SITE_B]), r, site_id="s", noise_multiplier=0, rng=None)
    # a centered: 1-5=-4, 9-5=4, clip(12)=10 -> 5: sum 5, squares 16+16+25 = 57
    # b centered: 2, -2, 0: sum 0, squares 8
    assert s.sums == (5.0, 0.0) and s.sums_sq == (57.0, 8.0) and s.count == 3.0


def test_noise_has_the_documented_std_per_coordinate():
    r = stats_ranges(_contract())
    sd_sum, sd_sq, sd_n = noise_stds(r, 2.0)
    # z sqrt(2d+1) = 2 sqrt(5) = 4.4721: times h (5, 2), h^2 (25, 4), 1
    assert sd_sum.tolist() == pytest.approx([22.3607, 8.9443], abs=1e-4)
    assert sd_sq.tolist() == pytest.approx([111.8034, 17.8885], abs=1e-4)
    assert sd_n == pytest.approx(4.4721, abs=1e-4)
    exact = site_statistics(SITE_A, r, site_id="s", noise_multiplier=0, rng=None)
    draws = np.array(
        [
            [*s.sums, *s.sums_sq, s.count]
            for s in (
                site_statistics(SITE_A, r, site_id="s", noise_multiplier=2.0, rng=rng)
                for rng in [np.random.default_rng(seed) for seed in range(3000)]
            )
        ]
    )
    want = np.array([*sd_sum, *sd_sq, sd_n])
    assert draws.mean(axis=0) == pytest.approx(
        [*exact.sums, *exact.sums_sq, 2.0], abs=0.1 * want.max()
    )
    assert draws.std(axis=0) == pytest.approx(want, rel=0.06)  # 3000 draws: ~1.3% std error


def test_release_is_one_gaussian_mechanism_for_the_accountant():
    z = 3.0
    direct = dp_accounting.rdp.RdpAccountant()
    direct.compose(dp_accounting.GaussianDpEvent(z))
    assert rdp_epsilon([stats_event(z)], 1e-5) == pytest.approx(direct.get_epsilon(1e-5))
    assert stats_event(0).non_private


def test_noise_multiplier_for_an_epsilon_is_the_smallest_that_fits():
    delta = 1e-5
    z = noise_multiplier_for(1.0, delta)
    assert rdp_epsilon([stats_event(z)], delta) <= 1.0
    assert rdp_epsilon([stats_event(z - 1e-3)], delta) > 1.0
    # textbook RDP conversion, eps <= 1/(2 z^2) + sqrt(2 ln(1/delta)) / z (optimal order):
    # at z = 4.9: 0.0208 + 4.7985/4.9 = 1.0002, so the accountant's (tighter) z is below 4.9
    assert 3.5 < z < 4.9


def test_combination_of_exact_releases_equals_the_pooled_statistics():
    r = stats_ranges(_contract())
    a = site_statistics(SITE_A, r, site_id="a", noise_multiplier=0, rng=None)
    b = site_statistics(SITE_B, r, site_id="b", noise_multiplier=0, rng=None)
    g = combine([a, b], r)
    # a (clipped): 1, 9, 10 -> mean 20/3, var (1 + 81 + 100)/3 - (20/3)^2 = 146/9
    # b: 2, -2, 0 -> mean 0, var 8/3
    assert g.mean == pytest.approx((20 / 3, 0.0))
    assert g.std == pytest.approx((math.sqrt(146 / 9), math.sqrt(8 / 3)))
    assert (g.count, g.sites, g.floored, g.negative_variance) == (3.0, ("a", "b"), (), ())
    assert g.mean_noise_std == (0.0, 0.0)


def _release(sums, sums_sq, count, site="s") -> SiteStats:
    return SiteStats(site, ("a", "b"), sums, sums_sq, count, 1.0, (1.0, 1.0), (1.0, 1.0), 1.0)


def test_a_negative_variance_estimate_becomes_the_floor_and_is_named():
    r = stats_ranges(_contract())
    # b: S1 0, S2 -1 over N 10 -> variance -0.1 -> 0 -> std floor: the noise floor
    # sqrt(sd(S2) / N) = sqrt(1 / 10) = 0.3162 (above 1e-3 * h = 0.002)
    g = combine([_release((0.0, 0.0), (10.0, -1.0), 10.0)], r)
    assert g.negative_variance == ("b",) and g.floored == ("b",)
    assert g.std[1] == pytest.approx(math.sqrt(0.1))
    assert g.std[0] == pytest.approx(1.0)  # a: 10/10 - 0 = 1
    # without noise the floor is 1e-3 * h: 0.002 for b
    exact = SiteStats("s", ("a", "b"), (0.0, 0.0), (10.0, -1.0), 10.0, 0.0, (0, 0), (0, 0), 0)
    assert combine([exact], r).std[1] == pytest.approx(STD_FLOOR_FRACTION * 2.0)


def test_noise_cannot_push_mean_or_std_outside_what_the_range_allows():
    r = stats_ranges(_contract())
    # a: S1/N = 100/10 = 10 > h 5 -> mean at hi 10; b: S2/N = 1000 > h^2 4 -> std h = 2
    g = combine([_release((100.0, 0.0), (0.0, 10_000.0), 10.0)], r)
    assert g.mean == pytest.approx((10.0, 0.0)) and g.std[1] == pytest.approx(2.0)


def test_a_noised_count_below_two_is_refused_with_the_remedy():
    r = stats_ranges(_contract())
    with pytest.raises(StatsError, match=r"count 1\.5 of sites s .*epsilon"):
        combine([_release((0.0, 0.0), (1.0, 1.0), 1.5)], r)
    with pytest.raises(StatsError, match="twice"):
        combine([_release((0.0, 0.0), (1.0, 1.0), 5.0)] * 2, r)


def test_published_stats_scale_only_the_numeric_inputs():
    contract = _contract()
    r = stats_ranges(contract)
    a = site_statistics(SITE_A, r, site_id="a", noise_multiplier=0, rng=None)
    g = GlobalStats.from_json(combine([a], r).to_json())
    center, scale = g.scaler_arrays(contract, r)
    # a: 1, 9 -> mean 5, std 4; b: 2, -2 -> mean 0, std 2
    assert center.tolist() == [5.0, 0, 0, 0.0, 0] and scale.tolist() == [4.0, 1, 1, 2.0, 1]
    scaled = fit_scaler(contract, SITE_A, (center, scale)).transform(SITE_A)
    assert scaled[:, 0].tolist() == [-1.0, 1.0] and scaled[:, 3].tolist() == [1.0, -1.0]
    with pytest.raises(ValueError, match="federated_zscore .* none was given"):
        fit_scaler(contract, SITE_A)


def test_site_release_round_trips_and_refuses_non_finite_values():
    r = stats_ranges(_contract())
    s = site_statistics(SITE_A, r, site_id="a", noise_multiplier=1.0, rng=np.random.default_rng(0))
    assert SiteStats.from_json(s.to_json()) == s
    body = json.loads(s.to_json())
    body["sums"][0] = float("nan")
    with pytest.raises(StatsError, match="site a: non-finite"):
        SiteStats.from_json(json.dumps(body).encode())


def test_contract_asks_for_the_release_and_dp_on_is_allowed():
    contract = _contract()
    check_private_scaling(contract, dp_enabled=True)  # no ContractError
    with pytest.raises(ValueError, match="federated_zscore needs statistics"):
        _contract(scaling="federated_zscore")
    with pytest.raises(ValueError, match="exactly one of epsilon or noise_multiplier"):
        _contract(scaling="federated_zscore", statistics={"epsilon": 1, "noise_multiplier": 2})
    with pytest.raises(ValueError, match="federated_zscore only"):
        _contract(scaling="fixed", statistics={"epsilon": 1.0})


# about 2 s (numpy only): not marked slow, so it also runs in `make test-fast`
def test_published_statistics_are_within_the_dp_noise_of_the_pooled_ones_on_a_skewed_split():
    from pipelines.benchmarks import federated_zscore_bench as bench
    from pipelines.config.loader import contract_by_name

    for name in ("digits", "breast_cancer"):
        contract = contract_by_name(name)
        split = bench.load_split(contract, seed=0, alpha=0.3)
        f = bench.noise_figures(contract, split, draws=20, seed=0)
        # 20 draws x (64 or 30) features of a standard normal: the max |z| stays below 4.5
        # (P > 4.5 per draw 6.8e-6); above 1 shows that noise was added at all
        assert 1.0 < f.max_mean_sigmas < 4.5, (name, f)
        assert 1.0 < f.max_var_sigmas < 4.5, (name, f)
        for seed in range(2):
            split = bench.load_split(contract, seed=seed, alpha=0.3)
            accs = {
                label: bench.accuracy(contract, split, scalers, seed)
                for label, scalers in bench.scalings(contract, split, seed).items()
            }
            per_site = accs.pop("site_zscore")
            for label, acc in accs.items():
                assert acc.test >= per_site.test, (name, seed, label, acc, per_site)
