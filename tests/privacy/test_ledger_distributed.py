"""Distributed-DP ledger entries (pure): kind `distributed`, the honest-site assumption beside
every entry, composition with local DP-SGD entries, budget checks."""

from __future__ import annotations

import json

import pytest

from components.privacy.accounting import DpSgdEvent, rdp_epsilon
from components.privacy.ledger import (
    KIND_DISTRIBUTED,
    TRUST_LOCAL,
    LedgerEntry,
    LedgerError,
    check_budget,
    check_run_budget,
    ledger_summary,
    new_distributed_entry,
    new_entry,
)
from components.privacy.skellam import SkellamEvent, record_sensitivity, skellam_epsilon

DELTA = 1e-5
SENS = record_sensitivity(1.0, 2.0, 4)  # l2 6, l1 12
ROUND = SkellamEvent(mu=3600.0, l2=SENS.l2, l1=SENS.l1, rounds=1, honest_sites=2)
LOCAL = DpSgdEvent(sampling_rate=16 / 151, noise_multiplier=1.5, steps=18)


def _distributed(round_: int, run: str = "run-a") -> LedgerEntry:
    return new_distributed_entry(
        run_id=run,
        round_=round_,
        site_id="hospital-berlin",
        attempt=1,
        event=ROUND,
        delta=DELTA,
        batch_size=16,
        epochs=2,
        num_examples=151,
        delta_clip=1.0,
        created_at="2026-12-06T23:00:00Z",
    )


def _local(round_: int) -> LedgerEntry:
    return new_entry(
        run_id="run-old",
        round_=round_,
        site_id="hospital-berlin",
        attempt=1,
        event=LOCAL,
        delta=DELTA,
        batch_size=16,
        epochs=2,
        num_examples=151,
        l2_norm_clip=1.0,
        created_at="2026-11-27T08:00:00Z",
        sampling="poisson",
    )


def test_a_distributed_entry_states_its_honest_site_assumption_and_round_trips() -> None:
    entry = _distributed(1)
    assert entry.kind == KIND_DISTRIBUTED
    assert entry.honest_sites == 2
    assert entry.trust.startswith("at least 2 site(s) add their Skellam noise share honestly")
    assert entry.epsilon == pytest.approx(skellam_epsilon(3600.0, SENS, DELTA))
    assert entry.epsilon_pld == entry.epsilon  # no PLD of Skellam: the RDP figure
    body = json.loads(entry.to_json())
    assert (body["skellam_mu"], body["l2_sensitivity"], body["l1_sensitivity"]) == (3600.0, 6, 12)
    back = LedgerEntry.from_json(entry.to_json())
    assert back == entry and back.event == ROUND


def test_local_entries_and_older_ones_state_no_honest_site_assumption() -> None:
    local = _local(1)
    assert local.honest_sites is None and local.trust == TRUST_LOCAL
    old = json.loads(local.to_json())
    for key in ("honest_sites", "trust", "skellam_mu", "l2_sensitivity", "l1_sensitivity"):
        del old[key]
    assert LedgerEntry.from_json(json.dumps(old).encode()).trust == TRUST_LOCAL


def test_inconsistent_entries_are_refused() -> None:
    body = json.loads(_distributed(1).to_json())
    body["skellam_mu"] = None
    with pytest.raises(LedgerError, match="needs honest_sites, skellam_mu"):
        LedgerEntry.from_json(json.dumps(body).encode())
    local = json.loads(_local(1).to_json())
    local["honest_sites"] = 3
    with pytest.raises(LedgerError, match="assumes no honest sites"):
        LedgerEntry.from_json(json.dumps(local).encode())


def test_distributed_rounds_compose_with_local_ones_in_one_accountant() -> None:
    entries = [_local(1), _local(2), _distributed(1), _distributed(2)]
    summary = ledger_summary(entries, DELTA)
    expected = rdp_epsilon([LOCAL, LOCAL, ROUND, ROUND], DELTA)
    assert summary["lifetime_epsilon"] == pytest.approx(expected)
    assert summary["distributed_entries"] == 2
    assert summary["min_honest_sites"] == 2
    assert summary["not_proven_entries"] == 0


def test_budget_checks_charge_a_distributed_round() -> None:
    one = skellam_epsilon(3600.0, SENS, DELTA)
    refused = check_budget(
        [_distributed(1)],
        ROUND,
        site_id="hospital-berlin",
        run_id="run-a",
        round_=2,
        epsilon_per_round=one * 0.99,
        lifetime_epsilon=100.0,
        delta=DELTA,
        policy_id="eu-health",
    )
    assert not refused.allowed and "dp.epsilon_per_round" in (refused.reason or "")
    # a run of 3 rounds with round 1 already charged pays rounds 2 and 3 only
    decision = check_run_budget(
        [_distributed(1)],
        ROUND,
        rounds=3,
        site_id="hospital-berlin",
        run_id="run-a",
        lifetime_epsilon=100.0,
        delta=DELTA,
        policy_id="eu-health",
    )
    assert decision.lifetime_after == pytest.approx(rdp_epsilon([ROUND] * 3, DELTA))
