"""Noise fitting for local runs, checked against dp-accounting directly."""

from __future__ import annotations

import pytest

from components.privacy.accounting import dp_sgd_event, rdp_epsilon
from pipelines.local_run.dpfit import fit_noise


def _eps(n: int, noise: float, rounds: int) -> float:
    event = dp_sgd_event(num_examples=n, batch_size=32, epochs=1, noise_multiplier=noise)
    return rdp_epsilon([event] * rounds, 1e-5)


def test_smallest_fitting_noise_is_chosen() -> None:
    choice = fit_noise(
        {"a": 122, "b": 400},
        {"a": (3.0, 1e-5), "b": (3.0, 1e-5)},
        batch_size=32,
        local_epochs=1,
        rounds=5,
        floor=1.1,
    )
    # the smaller site is the binding one: fits at the choice, not 0.1 below it
    assert _eps(122, choice.noise, 1) <= 3.0 and _eps(122, choice.noise, 5) <= 8.0
    below = round(choice.noise - 0.1, 1)
    assert below < 1.1 or _eps(122, below, 1) > 3.0 or _eps(122, below, 5) > 8.0
    assert choice.round_epsilon == pytest.approx(_eps(122, choice.noise, 1))


def test_floor_is_respected_and_impossible_limits_are_refused() -> None:
    choice = fit_noise(
        {"a": 10_000}, {"a": (3.0, 1e-5)}, batch_size=32, local_epochs=1, rounds=1, floor=1.1
    )
    assert choice.noise == 1.1
    with pytest.raises(ValueError, match="noise_multiplier"):
        fit_noise(
            {"a": 40}, {"a": (0.01, 1e-5)}, batch_size=32, local_epochs=1, rounds=5, floor=1.0
        )
