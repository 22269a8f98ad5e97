"""The console's privacy figures, from the sites' ledgers (pure: entries in, text out).

A local run prints, per finished train, what the site's ledger says about that round (every
charged attempt of it, composed) and the ledger's lifetime total, and after each aggregate one
line listing every member site with this run's epsilon up to that round. Figures are
re-accounted from the ledger entries (RDP, the enforced accountant, at the policy's delta),
never summed from task outputs: after a resume the rounds charged before the interruption are
in the ledger, and a train that published only a model reference still charged its entry.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from components.privacy.accounting import SAMPLING_POISSON, rdp_epsilon
from components.privacy.ledger import LedgerEntry


@dataclass(frozen=True)
class RoundPrivacy:
    """One site's ledger at one (run, round): the round's attempts composed, the lifetime
    composition of every entry, the attempts charged and the rows trained on (None if no
    entry); not_proven: an attempt of the round trained on shuffled batches, for which the
    Poisson epsilon is not a proven bound (its ledger entry says so)."""

    round_epsilon: float | None
    lifetime_epsilon: float
    attempts: int
    rows: int | None
    not_proven: bool = False


def _rdp(entries: Sequence[LedgerEntry], delta: float) -> float:
    return rdp_epsilon([e.event for e in entries], delta) if entries else 0.0


def round_privacy(
    entries: Sequence[LedgerEntry], run_id: str, round_index: int, delta: float
) -> RoundPrivacy:
    """What `entries` (one site's whole ledger) say about `run_id`'s round `round_index`."""
    mine = [e for e in entries if e.run_id == run_id and e.round == round_index]
    return RoundPrivacy(
        round_epsilon=_rdp(mine, delta) if mine else None,
        lifetime_epsilon=_rdp(entries, delta),
        attempts=len(mine),
        rows=max(mine, key=lambda e: e.attempt).num_examples if mine else None,
        not_proven=any(not e.non_private and e.sampling != SAMPLING_POISSON for e in mine),
    )


def eps_text(value: float | None) -> str:
    """`2.330`, `∞ (DP off)` or `–`."""
    if value is None:
        return "–"
    return "∞ (DP off)" if math.isinf(value) else f"{value:.3f}"


def train_text(privacy: RoundPrivacy) -> str:
    """`trained on 122 rows, ε this round 2.330 RDP, ledger total 2.330` (`k attempts
    charged` when a retry was charged too). The local console is the operator's view of
    every site (it split the data and printed the row counts itself), so rows are shown
    even where a policy keeps them out of what leaves the site."""
    text = "trained" + (f" on {privacy.rows} rows" if privacy.rows else "")
    if privacy.round_epsilon is None:
        return text + ", no ledger entry for this round"
    text += f", ε this round {eps_text(privacy.round_epsilon)} RDP"
    if privacy.not_proven:
        text += " (not proven: shuffled batches, dp_sampling=shuffle)"
    if privacy.attempts > 1:
        text += f" ({privacy.attempts} attempts charged)"
    return text + f", ledger total {eps_text(privacy.lifetime_epsilon)}"


def run_epsilon_line(
    site_ids: Sequence[str],
    ledgers: Mapping[str, Sequence[LedgerEntry]],
    deltas: Mapping[str, float],
    run_id: str,
    upto_round: int,
) -> str:
    """`ε this run up to round 2 (ledgers, RDP): a 3.210, b 3.180, c –`: every site in
    `site_ids`, its entries of `run_id` with round <= `upto_round` composed (– when none)."""
    parts = []
    for site in site_ids:
        mine = [e for e in ledgers.get(site, ()) if e.run_id == run_id and e.round <= upto_round]
        parts.append(f"{site} {eps_text(_rdp(mine, deltas[site]) if mine else None)}")
    return f"ε this run up to round {upto_round} (ledgers, RDP): " + ", ".join(parts)
