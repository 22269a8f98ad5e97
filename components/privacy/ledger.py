"""The site's privacy ledger: what each training attempt spent, and the budget check (pure).

One entry per (run, round, site, attempt), written *before* training starts: every
attempt that could publish an update is charged, also when it later fails or is retried.
An entry stores the mechanism (q, sigma, steps), not only its epsilon, so totals are
re-accounted: the lifetime total is the epsilon of *all* entries' events composed in one
accountant at the policy's current delta (tighter than summing per-entry epsilons, and
still correct if the policy's delta changes). The RDP value is the one budgets are
enforced on; PLD is reported beside it (see `components.privacy.accounting`).

Entries are of two kinds: `training` (one DP-SGD attempt) and `stats` (one release of the
DP-noised feature statistics of a `federated_zscore` statistics round: the Gaussian mechanism
once, stored as q = 1, steps = 1; round 0 of its run, `new_stats_entry`). Both compose in the
same accountant, so a statistics release counts against the same lifetime budget.

A third kind, `distributed` (`dp.mode: distributed`, `new_distributed_entry`), is one round of
the Skellam mechanism on the SecAgg sum (`components.privacy.skellam`): it stores the total
variance mu and the record sensitivities instead of (q, sigma, steps) and composes with the
others in the same accountant. Every entry states its honest-site assumption
(`honest_sites`, `trust`): none for local DP (each update carries its full noise), "at least
h sites add their share" for distributed DP, whose epsilon holds only under it.

A non-private entry (DP off, allowed by the policy) makes the lifetime total infinite:
no later DP round of that site can fit a finite lifetime budget.

The store (`components.privacy.ledger_store`) keeps one JSON object per entry in the
site's own bucket under `entry_key(...)`; this module only parses and decides.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any

from components.common.artifact_files import json_bytes
from components.privacy.accounting import (
    SAMPLING_POISSON,
    SAMPLING_SHUFFLE,
    DpSgdEvent,
    Event,
    epsilons,
    rdp_epsilon,
    sampling_guarantee,
)
from components.privacy.skellam import SkellamEvent

LEDGER_VERSION = "fedpipe.dev/privacy-ledger-entry/v1"
LEDGER_PREFIX = "ledger"
KIND_TRAINING = "training"
KIND_STATS = "stats"
KIND_DISTRIBUTED = "distributed"
KINDS = (KIND_TRAINING, KIND_STATS, KIND_DISTRIBUTED)
ROUND_KINDS = (KIND_TRAINING, KIND_DISTRIBUTED)  # the kinds a training round charges
TRUST_LOCAL = "none: local DP, every update carries its full noise"
DISTRIBUTED_GUARANTEE = (
    "proven if at least min_honest_sites sites add their Skellam share: Skellam mechanism on the "
    "secure-aggregation sum, record-level sensitivity of the clipped, rounded delta, "
    "no subsampling amplification"
)


def trust_distributed(honest_sites: int) -> str:
    """The assumption a distributed entry's epsilon rests on."""
    return (
        f"at least {honest_sites} site(s) add their Skellam noise share honestly and the "
        "coordinator sees only the secure-aggregation sum; with fewer the sum carries less "
        "noise than this epsilon assumes"
    )


STATS_ROUND = 0  # the statistics round comes before training round 1
STATS_GUARANTEE = "proven: Gaussian mechanism on clipped statistics, no subsampling"
_KEY_PART = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


class LedgerError(ValueError):
    """A ledger entry that cannot be parsed or a key part that is not safe."""


class BudgetExceededError(RuntimeError):
    """Training would exceed a DP budget of the site's policy; the site abstains."""


def _key_part(value: str, what: str) -> str:
    if not _KEY_PART.fullmatch(value) or ".." in value:
        raise LedgerError(f"{what} {value!r} is not usable in an object key ([A-Za-z0-9._-])")
    return value


def site_prefix(site_id: str) -> str:
    """Prefix of all ledger entries of one site: `ledger/<site>/`."""
    return f"{LEDGER_PREFIX}/{_key_part(site_id, 'site id')}/"


def entry_key(site_id: str, run_id: str, round_: int, attempt: int) -> str:
    """`ledger/<site>/<run>/round-0001/attempt-0001.json`: unique per (run, round, site, attempt)."""
    return (
        f"{site_prefix(site_id)}{_key_part(run_id, 'run id')}/"
        f"round-{round_:04d}/attempt-{attempt:04d}.json"
    )


@dataclass(frozen=True)
class LedgerEntry:
    """One charged training attempt.

    sampling_rate/noise_multiplier/steps: the mechanism; epsilon/epsilon_pld: this entry
    alone at `delta`; batch_size/epochs/num_examples: the training parameters (the ledger
    stays in the site's bucket); non_private: trained without DP; sampling: `poisson` or
    `shuffle` (entries written before Poisson sampling existed read as `shuffle`, which they
    were); guarantee: whether epsilon is proven for that sampling (`sampling_guarantee`).
    """

    run_id: str
    round: int
    site_id: str
    attempt: int
    sampling_rate: float
    noise_multiplier: float
    steps: int
    non_private: bool
    delta: float
    epsilon: float | None
    epsilon_pld: float | None
    batch_size: int
    epochs: int
    num_examples: int
    l2_norm_clip: float | None
    created_at: str
    version: str = LEDGER_VERSION
    sampling: str = SAMPLING_SHUFFLE
    guarantee: str = ""
    kind: str = KIND_TRAINING
    honest_sites: int | None = None
    trust: str = ""
    skellam_mu: float | None = None
    l2_sensitivity: float | None = None
    l1_sensitivity: float | None = None

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise LedgerError(f"ledger entry kind {self.kind!r} is not one of {', '.join(KINDS)}")
        distributed = self.kind == KIND_DISTRIBUTED
        mechanism = (self.honest_sites, self.skellam_mu, self.l2_sensitivity, self.l1_sensitivity)
        if distributed and any(v is None for v in mechanism):
            raise LedgerError(
                "a distributed entry needs honest_sites, skellam_mu, l2_sensitivity and "
                "l1_sensitivity"
            )
        if not distributed and self.honest_sites is not None:
            raise LedgerError(f"a {self.kind} entry assumes no honest sites (local DP)")
        if not self.guarantee:  # older entries: derived from their sampling
            stated = sampling_guarantee(self.sampling, not self.non_private)
            object.__setattr__(self, "guarantee", stated)
        if not self.trust:  # older entries are local DP
            trust = trust_distributed(self.honest_sites or 0) if distributed else TRUST_LOCAL
            object.__setattr__(self, "trust", trust)

    @property
    def event(self) -> Event:
        if self.kind == KIND_DISTRIBUTED:
            return SkellamEvent(
                float(self.skellam_mu or 0.0),
                float(self.l2_sensitivity or 0.0),
                float(self.l1_sensitivity or 0.0),
                1,
                int(self.honest_sites or 0),
            )
        return DpSgdEvent(self.sampling_rate, self.noise_multiplier, self.steps, self.non_private)

    @property
    def key(self) -> str:
        return entry_key(self.site_id, self.run_id, self.round, self.attempt)

    def to_json(self) -> bytes:
        return json_bytes(asdict(self))

    @staticmethod
    def from_json(data: bytes, where: str = "ledger entry") -> LedgerEntry:
        try:
            body = json.loads(data)
            entry = LedgerEntry(**body)
        except (ValueError, TypeError) as exc:
            raise LedgerError(f"{where}: not a valid ledger entry ({exc})") from exc
        if entry.version != LEDGER_VERSION:
            raise LedgerError(f"{where}: unsupported ledger version {entry.version!r}")
        return entry


def _finite_or_none(value: float) -> float | None:
    """JSON has no infinity: a non-private epsilon is stored as null."""
    return None if math.isinf(value) else value


def new_entry(
    *,
    run_id: str,
    round_: int,
    site_id: str,
    attempt: int,
    event: DpSgdEvent,
    delta: float,
    batch_size: int,
    epochs: int,
    num_examples: int,
    l2_norm_clip: float | None,
    created_at: str,
    sampling: str,
) -> LedgerEntry:
    """An entry for `event`, with its own RDP and PLD epsilon at `delta`."""
    return _accounted(
        event,
        delta,
        run_id=run_id,
        round=round_,
        site_id=site_id,
        attempt=attempt,
        sampling_rate=event.sampling_rate,
        noise_multiplier=event.noise_multiplier,
        steps=event.steps,
        non_private=event.non_private,
        batch_size=batch_size,
        epochs=epochs,
        num_examples=num_examples,
        l2_norm_clip=l2_norm_clip,
        created_at=created_at,
        sampling=sampling,
        guarantee=sampling_guarantee(sampling, not event.non_private),
    )


def _accounted(event: Event, delta: float, **fields: Any) -> LedgerEntry:
    """The entry of `fields` with `event`'s own RDP and PLD epsilon at `delta` (infinite ones
    stored as null); its key parts are validated."""
    eps = epsilons([event], delta)
    entry = LedgerEntry(
        delta=delta,
        epsilon=_finite_or_none(eps.rdp),
        epsilon_pld=_finite_or_none(eps.pld),
        **fields,
    )
    entry_key(entry.site_id, entry.run_id, entry.round, entry.attempt)  # validates the key parts
    return entry


def new_stats_entry(
    *,
    run_id: str,
    site_id: str,
    attempt: int,
    event: DpSgdEvent,
    delta: float,
    num_examples: int,
    created_at: str,
) -> LedgerEntry:
    """The entry of one feature-statistics release (kind `stats`, round 0): `event` is
    `components.datasets.federated_stats.stats_event(z)`, charged before the release."""
    if not event.non_private and (event.sampling_rate != 1.0 or event.steps != 1):
        raise LedgerError("a statistics release is one Gaussian mechanism (q = 1, steps = 1)")
    entry = new_entry(
        run_id=run_id,
        round_=STATS_ROUND,
        site_id=site_id,
        attempt=attempt,
        event=event,
        delta=delta,
        batch_size=num_examples,
        epochs=1,
        num_examples=num_examples,
        l2_norm_clip=None,
        created_at=created_at,
        sampling=SAMPLING_POISSON,
    )
    guarantee = STATS_GUARANTEE if not event.non_private else "DP off: statistics without noise"
    return replace(entry, guarantee=guarantee, kind=KIND_STATS)


def new_distributed_entry(
    *,
    run_id: str,
    round_: int,
    site_id: str,
    attempt: int,
    event: SkellamEvent,
    delta: float,
    batch_size: int,
    epochs: int,
    num_examples: int,
    delta_clip: float,
    created_at: str,
) -> LedgerEntry:
    """The entry of one distributed-DP round (kind `distributed`): `event` is one round of the
    Skellam mechanism (mu, sensitivities, h), charged before training; `delta_clip` is the L2
    clip of the site's model delta; its epsilon holds under the stated honest-site assumption."""
    if event.rounds != 1:
        raise LedgerError(f"a distributed entry is one round, got {event.rounds}")
    return _accounted(
        event,
        delta,
        run_id=run_id,
        round=round_,
        site_id=site_id,
        attempt=attempt,
        sampling_rate=1.0,
        noise_multiplier=0.0,
        steps=1,
        non_private=False,
        batch_size=batch_size,
        epochs=epochs,
        num_examples=num_examples,
        l2_norm_clip=delta_clip,
        created_at=created_at,
        sampling=SAMPLING_POISSON,
        guarantee=DISTRIBUTED_GUARANTEE,
        kind=KIND_DISTRIBUTED,
        honest_sites=event.honest_sites,
        skellam_mu=event.mu,
        l2_sensitivity=event.l2,
        l1_sensitivity=event.l1,
    )


def next_attempt(entries: Iterable[LedgerEntry], run_id: str, round_: int) -> int:
    """1 + the highest attempt already charged for (run, round) (entries of one site)."""
    attempts = [e.attempt for e in entries if e.run_id == run_id and e.round == round_]
    return max(attempts, default=0) + 1


@dataclass(frozen=True)
class BudgetDecision:
    """Result of the pre-training budget check (epsilons by RDP, the enforced accountant).

    round_epsilon: this round's entries plus the planned training, composed;
    lifetime_before / lifetime_after: all entries without / with the planned training.
    """

    allowed: bool
    reason: str | None
    round_epsilon: float
    lifetime_before: float
    lifetime_after: float
    epsilon_per_round: float
    lifetime_epsilon: float
    delta: float


def check_budget(
    entries: Sequence[LedgerEntry],
    planned: Event,
    *,
    site_id: str,
    run_id: str,
    round_: int,
    epsilon_per_round: float,
    lifetime_epsilon: float,
    delta: float,
    policy_id: str,
    hide_figures: bool = False,
) -> BudgetDecision:
    """May `site_id` spend `planned` now? Refused when this round's or the lifetime composition
    (re-accounted with RDP at `delta`) would exceed the policy's limit.

    hide_figures: the reason names only the policy's limits, not the epsilons (they give a
    hidden sample count away; policy `export.reveal_num_examples: false`)."""
    round_events = [e.event for e in entries if e.run_id == run_id and e.round == round_]
    all_events = [e.event for e in entries]
    round_eps = rdp_epsilon([*round_events, planned], delta)
    before = rdp_epsilon(all_events, delta)
    after = rdp_epsilon([*all_events, planned], delta)
    reason = None
    if round_eps > epsilon_per_round:
        spend = "more than" if hide_figures else f"epsilon {round_eps:.4f} (RDP, delta {delta:g}) >"
        reason = (
            f"site {site_id}: round {round_} would spend {spend} {policy_id} "
            f"dp.epsilon_per_round {epsilon_per_round:g}"
        )
    elif after > lifetime_epsilon:
        reach = (
            "beyond"
            if hide_figures
            else f"{after:.4f} (RDP, delta {delta:g}; {before:.4f} spent in {len(all_events)} "
            "ledger entries) >"
        )
        reason = (
            f"site {site_id}: lifetime epsilon would reach {reach} {policy_id} "
            f"dp.lifetime_epsilon {lifetime_epsilon:g}"
        )
    return BudgetDecision(
        allowed=reason is None,
        reason=reason,
        round_epsilon=round_eps,
        lifetime_before=before,
        lifetime_after=after,
        epsilon_per_round=epsilon_per_round,
        lifetime_epsilon=lifetime_epsilon,
        delta=delta,
    )


def ledger_summary(entries: Sequence[LedgerEntry], delta: float) -> dict[str, float | int | None]:
    """Lifetime totals of one site's ledger, re-accounted (RDP and PLD) at `delta`."""
    eps = epsilons([e.event for e in entries], delta)
    return {
        "entries": len(entries),
        "lifetime_epsilon": _finite_or_none(eps.rdp),
        "lifetime_epsilon_pld": _finite_or_none(eps.pld),
        "non_private_entries": sum(1 for e in entries if e.non_private),
        "not_proven_entries": sum(
            1
            for e in entries
            if e.kind == KIND_TRAINING and not e.non_private and e.sampling != SAMPLING_POISSON
        ),
        "distributed_entries": sum(1 for e in entries if e.kind == KIND_DISTRIBUTED),
        "min_honest_sites": min(
            (e.honest_sites for e in entries if e.honest_sites is not None), default=None
        ),
        "delta": delta,
    }


def check_run_budget(
    entries: Sequence[LedgerEntry],
    planned_round: Event,
    *,
    rounds: int,
    site_id: str,
    run_id: str,
    lifetime_epsilon: float,
    delta: float,
    policy_id: str,
    hide_figures: bool = False,
    planned_stats: DpSgdEvent | None = None,
) -> BudgetDecision:
    """Can `site_id` afford the whole run before it trains at all?

    The rounds of `run_id` not yet charged in `entries` (a resumed run pays only what is left)
    each spend `planned_round`; refused when the lifetime composition (RDP at `delta`) would
    then exceed `lifetime_epsilon`. `round_epsilon` is one planned round on its own.
    hide_figures: the reason names only the policy's limit (see `check_budget`).
    planned_stats: the run's feature-statistics release (federated_zscore), counted unless a
    `stats` entry of `run_id` is already charged.
    """
    if rounds < 1:
        raise LedgerError(f"rounds must be >= 1, got {rounds}")
    charged = {e.round for e in entries if e.run_id == run_id and e.kind in ROUND_KINDS}
    remaining = sum(1 for r in range(1, rounds + 1) if r not in charged)
    all_events = [e.event for e in entries]
    stats_paid = any(e.run_id == run_id and e.kind == KIND_STATS for e in entries)
    extra = [planned_stats] if planned_stats is not None and not stats_paid else []
    before = rdp_epsilon(all_events, delta)
    after = rdp_epsilon([*all_events, *extra, *([planned_round] * remaining)], delta)
    reason = None
    if after > lifetime_epsilon:
        take = (
            "past" if hide_figures else f"from {before:.4f} to {after:.4f} (RDP, delta {delta:g}) >"
        )
        stats = " and its feature statistics" if extra else ""
        reason = (
            f"site {site_id}: this run's {remaining} remaining round(s){stats} would take its "
            "lifetime "
            f"epsilon {take} {policy_id} dp.lifetime_epsilon {lifetime_epsilon:g}; it "
            "abstains from this run before any training"
        )
    return BudgetDecision(
        allowed=reason is None,
        reason=reason,
        round_epsilon=rdp_epsilon([planned_round], delta),
        lifetime_before=before,
        lifetime_after=after,
        epsilon_per_round=float("nan"),
        lifetime_epsilon=lifetime_epsilon,
        delta=delta,
    )
