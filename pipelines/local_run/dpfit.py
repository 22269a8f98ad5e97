"""Pick the DP-SGD noise multiplier for a local run so that every site stays within its
policy's per-round epsilon and the run stays within a target (pure, dp-accounting only).

Used only when the user did not set `noise_multiplier`: the compiled default may spend more
per round than a policy allows for small sites (a site then abstains for the whole run).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

RUN_EPSILON_TARGET = 8.0  # per site over one run (RDP), the federation's default goal
NOISE_LADDER = tuple(round(1.0 + 0.1 * i, 1) for i in range(41))  # 1.0 .. 5.0


@dataclass(frozen=True)
class NoiseChoice:
    """noise: the chosen multiplier; round_epsilon / run_epsilon: the worst site's RDP epsilon
    for one round and composed over the run, at its policy's delta."""

    noise: float
    round_epsilon: float
    run_epsilon: float


def fit_noise(
    num_examples: Mapping[str, int],
    limits: Mapping[str, tuple[float, float]],
    *,
    batch_size: int,
    local_epochs: int,
    rounds: int,
    floor: float,
    run_target: float = RUN_EPSILON_TARGET,
) -> NoiseChoice:
    """Smallest multiplier >= `floor` on NOISE_LADDER that fits every site.

    num_examples: {site: training rows}; limits: {site: (epsilon_per_round, delta)}.
    A site fits when one round's RDP epsilon <= its epsilon_per_round and `rounds` rounds
    composed <= `run_target`. ValueError when nothing on the ladder fits.
    """
    from components.privacy.accounting import dp_sgd_event, rdp_epsilon

    for noise in (n for n in NOISE_LADDER if n >= floor - 1e-9):
        worst_round = worst_run = 0.0
        fits = True
        for site, n in num_examples.items():
            per_round, delta = limits[site]
            event = dp_sgd_event(
                num_examples=n,
                batch_size=min(batch_size, n),
                epochs=local_epochs,
                noise_multiplier=noise,
            )
            one = rdp_epsilon([event], delta)
            run = rdp_epsilon([event] * rounds, delta)
            worst_round, worst_run = max(worst_round, one), max(worst_run, run)
            if one > per_round or run > run_target:
                fits = False
                break
        if fits:
            return NoiseChoice(noise, worst_round, worst_run)
    raise ValueError(
        f"no noise multiplier up to {NOISE_LADDER[-1]} keeps every site within its per-round "
        f"epsilon and {run_target} per run over {rounds} rounds; set --param noise_multiplier"
    )


def distributed_plan_line(
    epsilon_per_round: float, delta: float, honest_sites: int, rounds: int
) -> str:
    """What a `dp.mode: distributed` run spends per site: one Skellam round calibrated to the
    policy's epsilon per round (its size barely matters: `components.validate.budget`), composed
    over `rounds` (RDP). The noise multiplier does not apply."""
    from components.privacy.accounting import rdp_epsilon
    from components.privacy.skellam import round_plan
    from components.validate.budget import PREFLIGHT_DIM

    event = round_plan(epsilon_per_round, delta, honest_sites, PREFLIGHT_DIM).round_event
    return (
        f"DP: distributed (Skellam shares, at least {honest_sites} honest site(s) assumed): "
        f"every site spends ε {rdp_epsilon([event], delta):.2f} per round, "
        f"{rdp_epsilon([event] * rounds, delta):.2f} over {rounds} rounds (RDP); no per-example "
        "noise, so noise_multiplier does not apply"
    )
