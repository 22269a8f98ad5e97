"""What a site discloses about the privacy it spent, and what an observer can infer (pure).

A site's epsilon for one round is a function of its training-set size N: q = batch_size / N
and steps = epochs * (N // batch_size). Batch size, epochs and noise multiplier are pipeline
parameters (known to the coordinator), so an exact epsilon next to them gives N away by
searching the accountant over N. When a policy hides N (`export.reveal_num_examples: false`),
nothing that leaves the site may carry the exact figure:

* `published_epsilon` turns the exact figures of a round into what the manifest carries:
  exact when N is revealed; otherwise the policy's own bound `dp.epsilon_per_round` (the
  site's budget check already guaranteed the exact value is at most that) and no PLD figure.
  The exact values stay in the site's ledger.
* `consistent_sizes` is the observer's side: every N in a range whose epsilon agrees with a
  published figure. Tests and `pipelines/benchmarks/n_inversion.py` use it to show that the
  published figures leave many candidates.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass

EXACT = "exact"
POLICY_BOUND = "policy_bound"
DISCLOSURES = (EXACT, POLICY_BOUND)
# Relative tolerance of "the same epsilon" (float noise of the accountants).
SAME_EPSILON_RTOL = 1e-9


class DisclosureError(ValueError):
    """Figures that cannot be published as asked (names the site)."""


@dataclass(frozen=True)
class PublishedEpsilon:
    """The privacy figures of one round as they leave the site.

    epsilon: the exact RDP epsilon (disclosure `exact`) or an upper bound on it
    (`policy_bound`); epsilon_pld: the exact PLD epsilon, or None when only a bound leaves.
    """

    epsilon: float | None
    epsilon_pld: float | None
    disclosure: str


def published_epsilon(
    epsilon: float | None,
    epsilon_pld: float | None,
    *,
    reveal_num_examples: bool,
    epsilon_per_round: float,
    site_id: str,
) -> PublishedEpsilon:
    """What the manifest may carry for a round that spent (`epsilon`, `epsilon_pld`).

    N revealed: both figures as they are. N hidden: `epsilon_per_round` (the policy's bound)
    and no PLD figure; DisclosureError when the exact epsilon is above the bound (the budget
    check should have refused that training). DP off (`epsilon` None): nothing to hide.
    """
    if reveal_num_examples or epsilon is None:
        return PublishedEpsilon(epsilon, epsilon_pld, EXACT)
    if not math.isfinite(epsilon) or epsilon > epsilon_per_round * (1 + SAME_EPSILON_RTOL):
        raise DisclosureError(
            f"site {site_id}: epsilon {epsilon!r} spent this round is above the policy's "
            f"dp.epsilon_per_round {epsilon_per_round:g}; refusing to publish it"
        )
    return PublishedEpsilon(float(epsilon_per_round), None, POLICY_BOUND)


def epsilon_interval(epsilon: float, disclosure: str) -> tuple[float, float]:
    """The exact epsilon an observer knows to lie in [lo, hi], given a published figure."""
    if disclosure == EXACT:
        return (epsilon, epsilon)
    if disclosure == POLICY_BOUND:
        return (0.0, epsilon)
    raise DisclosureError(f"unknown epsilon disclosure {disclosure!r} (known: {DISCLOSURES})")


def consistent_sizes(
    interval: tuple[float, float],
    epsilon_of: Callable[[int], float],
    sizes: Iterable[int],
    *,
    rtol: float = SAME_EPSILON_RTOL,
) -> list[int]:
    """Every N in `sizes` whose epsilon (`epsilon_of(N)`, inf or NaN = impossible) lies in
    `interval`, with relative tolerance `rtol` on both ends."""
    lo, hi = interval
    out = []
    for n in sizes:
        eps = epsilon_of(n)
        if not math.isfinite(eps):
            continue
        if lo * (1 - rtol) <= eps <= hi * (1 + rtol):
            out.append(n)
    return out
