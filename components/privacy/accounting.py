"""Privacy accounting for DP-SGD with dp-accounting (pure: no I/O, no TensorFlow).

One local training = `steps` applications of the sampled Gaussian mechanism with sampling
rate q = batch_size / num_examples and noise multiplier sigma (noise stddev / clip norm).
Its dp-accounting event is `SelfComposed(PoissonSampled(q, Gaussian(sigma)), steps)`.

The accountants assume *Poisson* subsampling with rate q (each record independently in
each batch with probability q), and training samples exactly so by default
(`components.train.dpsgd`, `dp_sampling: poisson`), so the epsilon is the proven one.
Shuffled fixed-size batches remain an explicit option (`dp_sampling: shuffle`): the same
Poisson epsilon is then *not* a proven bound (the true epsilon of shuffling can be far
higher), and every ledger entry states which (`sampling_guarantee`).

Adjacency: add-or-remove-one record (record-level DP). Clipping is per example (one
microbatch per example), so the sensitivity of the summed gradient is the clip norm.

Composition (across steps, rounds, runs) is done by composing the *events* in a fresh
accountant and asking it once for epsilon at the given delta; epsilons are never summed.
RDP (`RdpAccountant`, default orders) is the budget-enforcing value; PLD
(`PLDAccountant`, pessimistic estimate, discretization 1e-3) is reported beside it and is
usually tighter.

Distributed DP (`dp.mode: distributed`, `components.privacy.skellam`): a `SkellamEvent` (rounds
of the Skellam mechanism on the SecAgg sum) composes with DP-SGD events by adding its RDP bound
at the same orders before the one conversion to epsilon. dp-accounting has no PLD of the
Skellam mechanism: a composition that holds one reports its RDP epsilon as its PLD figure too
(an upper bound, not the tighter PLD estimate).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterable
from dataclasses import dataclass

import dp_accounting
import numpy as np
from dp_accounting import pld, rdp

from components.privacy.skellam import SkellamEvent

PLD_DISCRETIZATION = 1e-3  # pessimistic upper bound; 10x coarser (and faster) than the default


SAMPLING_POISSON = "poisson"
SAMPLING_SHUFFLE = "shuffle"
SAMPLINGS = (SAMPLING_POISSON, SAMPLING_SHUFFLE)
# What the ledger and meta.json state about the epsilon of each sampling.
SAMPLING_PROVEN = "proven: Poisson subsampling, as the accountant assumes"
SAMPLING_NOT_PROVEN = (
    "not proven: shuffled fixed-size batches; the Poisson epsilon is not a bound for shuffling"
)
SAMPLING_NON_PRIVATE = "DP off: shuffled fixed-size batches, no epsilon"


class AccountingError(ValueError):
    """Parameters no accountant can work with (q outside (0, 1], sigma <= 0, ...)."""


@dataclass(frozen=True)
class DpSgdEvent:
    """One DP-SGD training: `steps` steps of the sampled Gaussian mechanism.

    sampling_rate: q in (0, 1]; noise_multiplier: sigma > 0 (stddev / clip norm);
    steps: number of noisy gradient steps (>= 0). `non_private` marks training without DP
    (epsilon is infinite; the other fields are then ignored).
    """

    sampling_rate: float
    noise_multiplier: float
    steps: int
    non_private: bool = False

    def __post_init__(self) -> None:
        if self.non_private:
            return
        if not (0.0 < self.sampling_rate <= 1.0) or math.isnan(self.sampling_rate):
            raise AccountingError(f"sampling rate q={self.sampling_rate} must be in (0, 1]")
        if not self.noise_multiplier > 0.0:
            raise AccountingError(f"noise multiplier {self.noise_multiplier} must be > 0")
        if self.steps < 0:
            raise AccountingError(f"steps {self.steps} must be >= 0")

    def to_dp_event(self) -> dp_accounting.DpEvent:
        """The dp-accounting event for this training."""
        if self.non_private:
            return dp_accounting.NonPrivateDpEvent()
        if self.steps == 0:
            return dp_accounting.NoOpDpEvent()
        step = dp_accounting.PoissonSampledDpEvent(
            self.sampling_rate, dp_accounting.GaussianDpEvent(self.noise_multiplier)
        )
        return dp_accounting.SelfComposedDpEvent(step, self.steps)


def dp_sgd_event(
    num_examples: int, batch_size: int, epochs: int, noise_multiplier: float
) -> DpSgdEvent:
    """The event of `epochs` epochs at (expected) batch size `batch_size`.

    q = batch_size / num_examples; steps = epochs * (num_examples // batch_size), for Poisson
    batches and for shuffled fixed-size batches (remainder dropped) alike.
    """
    if num_examples <= 0:
        raise AccountingError(f"num_examples {num_examples} must be > 0")
    if not 0 < batch_size <= num_examples:
        raise AccountingError(
            f"batch_size {batch_size} must be in [1, num_examples={num_examples}]"
        )
    if epochs < 0:
        raise AccountingError(f"epochs {epochs} must be >= 0")
    return DpSgdEvent(
        sampling_rate=batch_size / num_examples,
        noise_multiplier=noise_multiplier,
        steps=epochs * (num_examples // batch_size),
    )


def sampling_guarantee(sampling: str, dp_enabled: bool = True) -> str:
    """What the accountant's epsilon means for a training with this sampling."""
    if not dp_enabled:
        return SAMPLING_NON_PRIVATE
    if sampling == SAMPLING_POISSON:
        return SAMPLING_PROVEN
    if sampling == SAMPLING_SHUFFLE:
        return SAMPLING_NOT_PROVEN
    raise AccountingError(f"dp_sampling {sampling!r} must be one of {', '.join(SAMPLINGS)}")


def _check_delta(delta: float) -> None:
    if not 0.0 < delta < 1.0:
        raise AccountingError(f"delta {delta} must be in (0, 1)")


def merge_events(events: Iterable[DpSgdEvent]) -> list[DpSgdEvent]:
    """Events of the same mechanism (q, sigma) merged into one with the summed steps.

    Composing k steps then m steps of one mechanism is exactly k + m steps of it; merging
    keeps the PLD accountant's cost proportional to the number of distinct mechanisms.
    A non-private event is kept as one non-private event.
    """
    steps: dict[tuple[float, float], int] = {}
    non_private = False
    for event in events:
        if event.non_private:
            non_private = True
        elif event.steps > 0:
            key = (event.sampling_rate, event.noise_multiplier)
            steps[key] = steps.get(key, 0) + event.steps
    merged = [DpSgdEvent(q, sigma, n) for (q, sigma), n in sorted(steps.items())]
    if non_private:
        merged.append(DpSgdEvent(0.0, 0.0, 0, non_private=True))
    return merged


@functools.lru_cache(maxsize=128)
def step_rdp(sampling_rate: float, noise_multiplier: float) -> np.ndarray:
    """RDP of one step of the Poisson-sampled Gaussian at `RdpAccountant`'s default orders,
    computed by that accountant (read-only; cached: a training task asks for the same
    mechanism six times, 0.04 s of CPU each)."""
    accountant = rdp.RdpAccountant()
    accountant.compose(
        dp_accounting.PoissonSampledDpEvent(
            sampling_rate, dp_accounting.GaussianDpEvent(noise_multiplier)
        )
    )
    values = accountant.rdp
    values.setflags(write=False)
    return values


_RDP_ORDERS = rdp.RdpAccountant().orders

Event = DpSgdEvent | SkellamEvent


def _split(events: Iterable[Event]) -> tuple[list[DpSgdEvent], list[SkellamEvent]]:
    dpsgd: list[DpSgdEvent] = []
    skellam: list[SkellamEvent] = []
    for event in events:
        (skellam if isinstance(event, SkellamEvent) else dpsgd).append(event)
    return dpsgd, skellam


def merge_skellam(events: Iterable[SkellamEvent]) -> list[SkellamEvent]:
    """Skellam events of the same mechanism (mu, l2, l1) merged into one with summed rounds."""
    rounds: dict[tuple[float, float, float], tuple[int, int]] = {}
    for e in events:
        if e.rounds > 0:
            count, honest = rounds.get((e.mu, e.l2, e.l1), (0, e.honest_sites))
            rounds[(e.mu, e.l2, e.l1)] = (count + e.rounds, min(honest, e.honest_sites))
    return [SkellamEvent(mu, l2, l1, n, h) for (mu, l2, l1), (n, h) in sorted(rounds.items())]


def rdp_epsilon(events: Iterable[Event], delta: float) -> float:
    """Epsilon (RDP accountant) of all `events` composed, at `delta`; inf if any is non-private.

    Bit for bit what an `RdpAccountant` composing the merged events says: it adds
    `steps * (one step's RDP)` per mechanism to zeros in the same order, and the one-step
    RDP comes from the accountant itself (`step_rdp`). Skellam events add their RDP bound
    (`SkellamEvent.rdp`) at the same orders."""
    _check_delta(delta)
    dpsgd, skellam = _split(events)
    merged = merge_events(dpsgd)
    if any(e.non_private for e in merged):
        accountant = rdp.RdpAccountant()
        for event in merged:
            accountant.compose(event.to_dp_event())
        return float(accountant.get_epsilon(delta))
    total = np.zeros_like(_RDP_ORDERS, dtype=np.float64)
    for event in merged:
        total += event.steps * step_rdp(event.sampling_rate, event.noise_multiplier)
    for sk in merge_skellam(skellam):
        total += sk.rdp(_RDP_ORDERS)
    return float(rdp.compute_epsilon(_RDP_ORDERS, total, delta)[0])


def pld_epsilon(events: Iterable[Event], delta: float) -> float:
    """Epsilon (PLD accountant, pessimistic) of all `events` composed, at `delta`; with a
    Skellam event among them, the RDP epsilon (module doc)."""
    _check_delta(delta)
    events = list(events)
    dpsgd, skellam = _split(events)
    merged = merge_events(dpsgd)
    if any(e.non_private for e in merged):
        return math.inf
    if any(e.rounds > 0 for e in skellam):
        return rdp_epsilon(events, delta)
    return _pld_epsilon(tuple(merged), delta)


@functools.lru_cache(maxsize=128)
def _pld_epsilon(merged: tuple[DpSgdEvent, ...], delta: float) -> float:
    accountant = pld.PLDAccountant(value_discretization_interval=PLD_DISCRETIZATION)
    for event in merged:
        accountant.compose(event.to_dp_event())
    return float(accountant.get_epsilon(delta))


@dataclass(frozen=True)
class Epsilons:
    """Epsilon of one composition by both accountants at one delta."""

    rdp: float
    pld: float
    delta: float


def epsilons(events: Iterable[Event], delta: float) -> Epsilons:
    """RDP and PLD epsilon of the composition of `events` at `delta`."""
    events = list(events)
    return Epsilons(rdp=rdp_epsilon(events, delta), pld=pld_epsilon(events, delta), delta=delta)
