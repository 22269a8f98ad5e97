"""The local run's DP plan line under `dp.mode: distributed` (pure)."""

from __future__ import annotations

from pipelines.local_run.dpfit import distributed_plan_line


def test_the_plan_names_the_assumption_and_the_composed_epsilon() -> None:
    line = distributed_plan_line(3.0, 1e-5, 2, 5)
    # one round is calibrated to 3.0; five compose to 7.55 (RDP, as the ledger re-accounts)
    assert line == (
        "DP: distributed (Skellam shares, at least 2 honest site(s) assumed): every site spends "
        "ε 3.00 per round, 7.55 over 5 rounds (RDP); no per-example noise, so noise_multiplier "
        "does not apply"
    )
