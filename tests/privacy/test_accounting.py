"""Privacy accounting: TF Privacy's published value, composition, parameter checks."""

from __future__ import annotations

import math

import dp_accounting
import pytest
from dp_accounting import rdp

from components.privacy.accounting import (
    AccountingError,
    DpSgdEvent,
    dp_sgd_event,
    epsilons,
    pld_epsilon,
    rdp_epsilon,
)


def test_reproduces_tf_privacy_published_value() -> None:
    # tensorflow_privacy compute_dp_sgd_privacy_lib test: N=60000, batch 150, sigma 1.3,
    # 15 epochs, delta 1e-5 -> 0.7242234026 (RDP, Poisson sampling).
    event = dp_sgd_event(num_examples=60000, batch_size=150, epochs=15, noise_multiplier=1.3)
    assert event.sampling_rate == pytest.approx(0.0025)
    assert event.steps == 6000
    assert rdp_epsilon([event], 1e-5) == pytest.approx(0.7242234026, abs=1e-9)


def test_pld_is_tighter_than_rdp_but_positive() -> None:
    event = dp_sgd_event(60000, 150, 15, 1.3)
    eps = epsilons([event], 1e-5)
    assert 0.0 < eps.pld < eps.rdp


def test_composition_reaccounts_instead_of_summing() -> None:
    one = DpSgdEvent(sampling_rate=0.1, noise_multiplier=1.5, steps=18)
    single = rdp_epsilon([one], 1e-5)
    composed = rdp_epsilon([one] * 5, 1e-5)
    # Same as one event of 5x the steps, and strictly below 5 x the per-round epsilon.
    assert composed == pytest.approx(rdp_epsilon([DpSgdEvent(0.1, 1.5, 90)], 1e-5), rel=1e-12)
    assert single < composed < 5 * single


def test_matches_dp_accounting_directly() -> None:
    accountant = rdp.RdpAccountant()
    step = dp_accounting.PoissonSampledDpEvent(16 / 151, dp_accounting.GaussianDpEvent(1.2))
    accountant.compose(dp_accounting.SelfComposedDpEvent(step, 27))
    ours = rdp_epsilon([dp_sgd_event(151, 16, 3, 1.2)], 1e-5)
    assert ours == pytest.approx(accountant.get_epsilon(1e-5), abs=1e-12)


def test_non_private_event_is_infinite() -> None:
    event = DpSgdEvent(0.0, 0.0, 0, non_private=True)
    assert math.isinf(rdp_epsilon([event], 1e-5))
    assert math.isinf(pld_epsilon([event], 1e-5))


def test_no_steps_spend_nothing() -> None:
    assert rdp_epsilon([DpSgdEvent(0.5, 1.0, 0)], 1e-5) == 0.0


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (
            {"num_examples": 0, "batch_size": 1, "epochs": 1, "noise_multiplier": 1.0},
            "num_examples",
        ),
        (
            {"num_examples": 10, "batch_size": 11, "epochs": 1, "noise_multiplier": 1.0},
            "batch_size",
        ),
        ({"num_examples": 10, "batch_size": 5, "epochs": 1, "noise_multiplier": 0.0}, "noise"),
    ],
)
def test_bad_parameters_are_refused(kwargs: dict, match: str) -> None:
    with pytest.raises(AccountingError, match=match):
        dp_sgd_event(**kwargs)


def test_bad_delta_is_refused() -> None:
    with pytest.raises(AccountingError, match="delta"):
        rdp_epsilon([DpSgdEvent(0.1, 1.0, 1)], 0.0)


def test_rdp_is_bit_for_bit_the_accountants_and_one_step_is_computed_once() -> None:
    from components.privacy.accounting import step_rdp

    compositions = [
        [DpSgdEvent(8 / 122, 1.5, 75)],
        [DpSgdEvent(8 / 122, 1.5, 75)] * 5,
        [DpSgdEvent(8 / 122, 1.5, 75), DpSgdEvent(8 / 38, 2.25, 20), DpSgdEvent(0.5, 1.0, 0)],
        [],
    ]
    step_rdp.cache_clear()
    for events in compositions:
        accountant = rdp.RdpAccountant()
        for event in sorted({(e.sampling_rate, e.noise_multiplier) for e in events if e.steps > 0}):
            steps = sum(e.steps for e in events if (e.sampling_rate, e.noise_multiplier) == event)
            step = dp_accounting.PoissonSampledDpEvent(
                event[0], dp_accounting.GaussianDpEvent(event[1])
            )
            accountant.compose(dp_accounting.SelfComposedDpEvent(step, steps))
        assert rdp_epsilon(events, 1e-5) == accountant.get_epsilon(1e-5)  # exactly
    assert step_rdp.cache_info().misses == 2  # two mechanisms, each computed once
