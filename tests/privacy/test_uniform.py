"""The one uniform source behind DP-SGD sampling and Skellam noise."""

import numpy as np

from components.privacy import skellam, uniform
from components.train import dpsgd


def test_os_uniform_draws_53_bit_floats_in_unit_interval():
    draws = uniform.os_uniform(1000)
    assert draws.shape == (1000,) and draws.dtype == np.float64
    assert ((draws >= 0.0) & (draws < 1.0)).all()
    scaled = draws * 2.0**53
    assert np.array_equal(scaled, np.floor(scaled))  # whole multiples of 2^-53
    assert len(np.unique(draws)) > 990  # not a constant or a short cycle


def test_seeded_uniform_is_reproducible_pcg64():
    assert np.array_equal(uniform.seeded_uniform(7)(5), np.random.default_rng(7).random(5))
    assert not np.array_equal(uniform.seeded_uniform(7)(5), uniform.seeded_uniform(8)(5))


def test_dpsgd_and_skellam_share_the_source():
    assert skellam.os_uniform is dpsgd.os_uniform is uniform.os_uniform
    assert skellam.seeded_uniform is dpsgd.seeded_uniform is uniform.seeded_uniform
