"""Skellam mechanism for distributed DP (pure): sensitivity, RDP bound, calibration, noise,
words mod 2^w. Expected values are worked by hand in the comments."""

from __future__ import annotations

import math

import numpy as np
import pytest
from dp_accounting import rdp
from scipy import stats

from components.privacy.accounting import DpSgdEvent, pld_epsilon, rdp_epsilon
from components.privacy.skellam import (
    Sensitivity,
    SkellamError,
    SkellamEvent,
    check_modulus,
    clip_l2,
    decode_sum,
    from_words,
    gamma_for,
    mu_for,
    plan_for,
    poisson,
    record_sensitivity,
    scale_round,
    seeded_uniform,
    site_share,
    site_vector,
    skellam_epsilon,
    skellam_noise,
    skellam_rdp,
    skellam_rdp_curve,
    sum_bound,
    to_words,
)

DELTA = 1e-5


def test_record_sensitivity_includes_rounding_and_both_ends_of_the_ball() -> None:
    # C = 1, gamma = 2, P = 4: Delta_2 = 2 * 2 * 1 + sqrt(4) = 6;
    # Delta_1 = min(sqrt(4) * 6, 6^2) = min(12, 36) = 12
    assert record_sensitivity(1.0, 2.0, 4) == Sensitivity(l2=6.0, l1=12.0)
    # C = 0.25, gamma = 1, P = 1: Delta_2 = 0.5 + 1 = 1.5; Delta_1 = min(1.5, 2.25) = 1.5
    assert record_sensitivity(0.25, 1.0, 1) == Sensitivity(l2=1.5, l1=1.5)
    with pytest.raises(SkellamError, match="dimension P 0"):
        record_sensitivity(1.0, 1.0, 0)


def test_gamma_keeps_the_rounding_share_of_the_sensitivity_at_the_asked_fraction() -> None:
    # sqrt(4) / (2 * 1 * 0.01) = 100; then sqrt(P) = 2 is 1 % of 2 gamma C = 200
    assert gamma_for(1.0, 4) == pytest.approx(100.0)
    assert gamma_for(0.5, 100, inflation=0.1) == pytest.approx(10 / (2 * 0.5 * 0.1))


def test_rdp_bound_by_hand() -> None:
    s = Sensitivity(l2=6.0, l1=12.0)
    # alpha 2, mu 36: 2 * 36 / 72 = 1; min((3 * 36 + 6 * 12) / (4 * 36^2), 3 * 12 / 72)
    #                = min(180 / 5184, 0.5) = 5 / 144
    assert skellam_rdp(2, 36.0, s) == pytest.approx(1 + 5 / 144, rel=1e-12)
    # alpha 3: 3 * 36 / 72 = 1.5; min((5 * 36 + 72) / 5184, 0.5) = 252 / 5184 = 7 / 144
    assert skellam_rdp(3, 36.0, s) == pytest.approx(1.5 + 7 / 144, rel=1e-12)
    # the other branch: l2 = l1 = 2, mu = 1, alpha 2: 2 * 4 / 2 = 4;
    # min((3 * 4 + 12) / 4, 3 * 2 / 2) = min(6, 3) = 3 -> 7
    assert skellam_rdp(2, 1.0, Sensitivity(2.0, 2.0)) == pytest.approx(7.0)
    with pytest.raises(SkellamError, match="integer orders"):
        skellam_rdp(2.5, 36.0, s)  # type: ignore[arg-type]


def test_fractional_orders_take_the_bound_of_the_next_integer() -> None:
    s = Sensitivity(l2=6.0, l1=12.0)
    curve = skellam_rdp_curve([1.1, 1.5, 2.0, 2.5], 36.0, s)
    two, three = 1 + 5 / 144, 1.5 + 7 / 144
    np.testing.assert_allclose(curve, [two, two, two, three], rtol=1e-12)


def test_epsilon_is_the_accountants_conversion_of_the_composed_bound() -> None:
    s = Sensitivity(l2=6.0, l1=12.0)
    orders = rdp.RdpAccountant().orders
    by_hand = 3 * skellam_rdp_curve(orders, 3600.0, s)
    expected = rdp.compute_epsilon(orders, by_hand, DELTA)[0]
    assert skellam_epsilon(3600.0, s, DELTA, rounds=3) == pytest.approx(expected, rel=1e-12)
    # composing with DP-SGD adds RDP before the one conversion
    dpsgd = DpSgdEvent(0.1, 1.2, 10)
    mixed = rdp_epsilon([dpsgd, SkellamEvent(3600.0, 6.0, 12.0, 3, 2)], DELTA)
    assert mixed > max(rdp_epsilon([dpsgd], DELTA), skellam_epsilon(3600.0, s, DELTA, 3))
    assert mixed < rdp_epsilon([dpsgd], DELTA) + skellam_epsilon(3600.0, s, DELTA, 3)
    # no PLD of Skellam in dp-accounting: its RDP figure stands in
    assert pld_epsilon([dpsgd, SkellamEvent(3600.0, 6.0, 12.0, 3, 2)], DELTA) == mixed


def test_large_variance_approaches_the_gaussian_from_above() -> None:
    # Var mu and L2 sensitivity 6: the Gaussian with noise multiplier sqrt(mu) / 6
    s = Sensitivity(l2=6.0, l1=12.0)
    mu = 36.0 * 25.0  # noise multiplier 5
    orders = [float(o) for o in range(2, 257)]
    gauss = rdp.compute_epsilon(orders, np.array(orders) / (2 * 25.0), DELTA)[0]
    sk = rdp.compute_epsilon(orders, skellam_rdp_curve(orders, mu, s), DELTA)[0]
    assert gauss < sk < gauss * 1.01


def test_calibration_finds_the_smallest_variance_for_the_epsilon() -> None:
    s = record_sensitivity(1.0, gamma_for(1.0, 650), 650)
    mu = mu_for(2.0, DELTA, s)
    assert skellam_epsilon(mu, s, DELTA) <= 2.0
    assert skellam_epsilon(mu * (1 - 1e-4), s, DELTA) > 2.0
    # five rounds at the same total epsilon need more noise per round
    assert mu_for(2.0, DELTA, s, rounds=5) > 4 * mu


def test_each_site_adds_a_share_and_h_shares_sum_to_mu() -> None:
    assert site_share(900.0, 3) == 300.0
    with pytest.raises(SkellamError, match="min_honest_sites 0"):
        site_share(900.0, 0)


@pytest.mark.parametrize("lam", [0.7, 3.0, 25.0, 4.0e5])
def test_poisson_sampler_matches_the_distribution(lam: float) -> None:
    n = 200_000
    draws = poisson(lam, n, seeded_uniform(7))
    assert abs(draws.mean() - lam) < 5 * math.sqrt(lam / n)
    # variance of the sample variance of a Poisson ~ (lam + 2 lam^2) / n
    assert abs(draws.var() - lam) < 5 * math.sqrt((lam + 2 * lam * lam) / n)
    # the pmf at the mode, for the small means (where a wrong sampler shows)
    if lam < 100:
        k = math.floor(lam)
        p = stats.poisson.pmf(k, lam)
        assert abs(np.mean(draws == k) - p) < 5 * math.sqrt(p * (1 - p) / n)


def test_skellam_noise_is_integer_centred_with_the_variance() -> None:
    n = 200_000
    noise = skellam_noise(50.0, n, seeded_uniform(3))
    assert noise.dtype == np.int64
    assert abs(noise.mean()) < 5 * math.sqrt(50.0 / n)
    assert abs(noise.var() - 50.0) < 5 * 50.0 * math.sqrt(2 / n) * 1.5
    # sum of h = 4 shares of variance 12.5 has variance 50 (closed under summation)
    shares = sum(skellam_noise(12.5, n, seeded_uniform(10 + i)) for i in range(4))
    assert abs(shares.var() - 50.0) < 5 * 50.0 * math.sqrt(2 / n) * 1.5


def test_seeded_noise_is_reproducible() -> None:
    a = skellam_noise(1e4, 100, seeded_uniform(1))
    b = skellam_noise(1e4, 100, seeded_uniform(1))
    assert np.array_equal(a, b)


def test_site_vector_clips_scales_rounds_then_adds_the_noise() -> None:
    clipped, norm = clip_l2(np.array([3.0, 4.0]), 1.0)
    assert norm == 5.0
    np.testing.assert_allclose(clipped, [0.6, 0.8])
    assert scale_round(clipped, 10.0).tolist() == [6, 8]
    assert scale_round(np.array([0.24, -0.26]), 10.0).tolist() == [2, -3]
    v = site_vector(
        np.array([3.0, 4.0]), clip=1.0, gamma=10.0, share=9.0, uniform=seeded_uniform(5)
    )
    noise = skellam_noise(9.0, 2, seeded_uniform(5))
    assert (v.values - noise).tolist() == [6, 8]
    assert v.clipped and v.norm == 5.0
    unclipped = site_vector(
        np.array([0.3]), clip=1.0, gamma=10.0, share=1.0, uniform=seeded_uniform(5)
    )
    assert not unclipped.clipped
    with pytest.raises(SkellamError, match="NaN"):
        clip_l2(np.array([np.nan]), 1.0)


@pytest.mark.parametrize("bits", [32, 64])
def test_signed_vectors_sum_mod_2w_and_decode_exactly(bits: int) -> None:
    rng = np.random.default_rng(0)
    vectors = [rng.integers(-(10**6), 10**6, size=50) for _ in range(7)]
    total = np.zeros(50, dtype=np.uint32 if bits == 32 else np.uint64)
    for v in vectors:
        total += to_words(v, bits)
    assert np.array_equal(from_words(total, bits), np.sum(vectors, axis=0))
    np.testing.assert_allclose(decode_sum(from_words(total, bits), 4.0), np.sum(vectors, 0) / 4)


def test_modulus_check_refuses_a_sum_that_could_wrap() -> None:
    # 10 sites, gamma C = 1000: 10 * 1000.5 + 20 * sqrt(10 * 1e6) = 10005 + 63245.55...
    bound = sum_bound(10, 1.0, 1000.0, 650, 1e6)
    assert bound == pytest.approx(10005 + 20 * math.sqrt(1e7))
    check_modulus(bound, 32)
    with pytest.raises(SkellamError, match="wrap mod 2\\^32"):
        check_modulus(2.0**31, 32)


def test_a_plan_calibrates_gamma_and_mu_and_splits_the_noise_over_h() -> None:
    plan = plan_for(1.5, DELTA, clip=1.0, dim=4, honest_sites=3)
    assert plan.gamma == pytest.approx(100.0)  # sqrt(4) / (2 * 1 * 0.01)
    assert plan.sensitivity == Sensitivity(l2=202.0, l1=404.0)  # 2 * 100 + 2; sqrt(4) * 202
    assert plan.mu == mu_for(1.5, DELTA, plan.sensitivity)
    assert plan.share == pytest.approx(plan.mu / 3)
    event = plan.round_event
    assert (event.rounds, event.honest_sites, event.l2) == (1, 3, 202.0)
    assert rdp_epsilon([event], DELTA) <= 1.5


@pytest.mark.parametrize("bits", [32, 64])
def test_encode_sum_decode_gives_the_mean_clipped_delta_plus_the_noise(bits: int) -> None:
    from components.privacy.skellam import SkellamPlan, decode_distributed, encode_distributed

    # gamma 10, clip 1, P = 2, mu 8 over h = 2 sites: shares of 4
    plan = SkellamPlan(1.0, 10.0, 2, record_sensitivity(1.0, 10.0, 2), 8.0, 2)
    words_a, a = encode_distributed(np.array([3.0, 4.0]), plan, seeded_uniform(1), bits)
    words_b, b = encode_distributed(np.array([0.1, -0.2]), plan, seeded_uniform(2), bits)
    noise_a = skellam_noise(4.0, 2, seeded_uniform(1))
    noise_b = skellam_noise(4.0, 2, seeded_uniform(2))
    assert (a.values - noise_a).tolist() == [6, 8]  # clip to [0.6, 0.8], times 10
    assert (b.values - noise_b).tolist() == [1, -2]
    mean = decode_distributed(words_a + words_b, 2, plan, bits, num_sites=2)
    np.testing.assert_allclose(mean, (np.array([7, 6]) + noise_a + noise_b) / 10 / 2)
    with pytest.raises(SkellamError, match="counts 2 contribution"):
        decode_distributed(words_a + words_b, 3, plan, bits, num_sites=3)
    with pytest.raises(SkellamError, match="fewer than dp.min_honest_sites 2"):
        decode_distributed(words_a, 1, plan, bits, num_sites=2)
    with pytest.raises(SkellamError, match="plan was made for 2"):
        encode_distributed(np.zeros(3), plan, seeded_uniform(1), bits)
