"""Privacy ledger (pure): entries, re-accounted totals, budget refusal before training."""

from __future__ import annotations

import math

import pytest

from components.privacy.accounting import DpSgdEvent, pld_epsilon, rdp_epsilon
from components.privacy.ledger import (
    LedgerEntry,
    LedgerError,
    check_budget,
    entry_key,
    ledger_summary,
    new_entry,
    next_attempt,
)

DELTA = 1e-5
EVENT = DpSgdEvent(sampling_rate=16 / 151, noise_multiplier=1.5, steps=18)


def _entry(run: str, round_: int, attempt: int = 1, event: DpSgdEvent = EVENT) -> LedgerEntry:
    return new_entry(
        run_id=run,
        round_=round_,
        site_id="hospital-berlin",
        attempt=attempt,
        event=event,
        delta=DELTA,
        batch_size=16,
        epochs=2,
        num_examples=151,
        l2_norm_clip=1.0,
        created_at="2026-11-27T08:00:00Z",
        sampling="poisson",
    )


def test_entry_epsilon_equals_dp_accounting_recomputed() -> None:
    entry = _entry("run-a", 1)
    assert entry.epsilon == pytest.approx(rdp_epsilon([EVENT], DELTA), abs=1e-6)
    assert entry.epsilon_pld == pytest.approx(pld_epsilon([EVENT], DELTA), abs=1e-6)
    # And the stored mechanism re-accounts to the same value after a JSON round trip.
    back = LedgerEntry.from_json(entry.to_json())
    assert back == entry
    assert rdp_epsilon([back.event], DELTA) == pytest.approx(entry.epsilon, abs=1e-6)


def test_lifetime_total_is_composed_across_rounds_and_runs() -> None:
    entries = [_entry("run-a", r) for r in (1, 2, 3)] + [_entry("run-b", 1)]
    summary = ledger_summary(entries, DELTA)
    expected = rdp_epsilon([EVENT] * 4, DELTA)
    assert summary["entries"] == 4
    assert summary["lifetime_epsilon"] == pytest.approx(expected, abs=1e-6)
    assert summary["lifetime_epsilon"] < 4 * entries[0].epsilon  # tighter than summing
    assert summary["lifetime_epsilon_pld"] == pytest.approx(
        pld_epsilon([EVENT] * 4, DELTA), abs=1e-6
    )


def test_budget_allows_within_limits() -> None:
    decision = check_budget(
        [_entry("run-a", 1)],
        EVENT,
        site_id="hospital-berlin",
        run_id="run-a",
        round_=2,
        epsilon_per_round=3.0,
        lifetime_epsilon=50.0,
        delta=DELTA,
        policy_id="eu-health",
    )
    assert decision.allowed and decision.reason is None
    assert decision.lifetime_after == pytest.approx(rdp_epsilon([EVENT, EVENT], DELTA))


def test_round_over_per_round_budget_is_refused_naming_site_and_budget() -> None:
    per_round = rdp_epsilon([EVENT], DELTA) * 0.9
    decision = check_budget(
        [],
        EVENT,
        site_id="hospital-berlin",
        run_id="run-a",
        round_=1,
        epsilon_per_round=per_round,
        lifetime_epsilon=50.0,
        delta=DELTA,
        policy_id="eu-health",
    )
    assert not decision.allowed
    assert "hospital-berlin" in decision.reason
    assert "eu-health dp.epsilon_per_round" in decision.reason


def test_retry_in_same_round_counts_towards_round_budget() -> None:
    single = rdp_epsilon([EVENT], DELTA)
    kwargs = dict(
        site_id="hospital-berlin",
        run_id="run-a",
        round_=1,
        epsilon_per_round=single * 1.2,
        lifetime_epsilon=50.0,
        delta=DELTA,
        policy_id="eu-health",
    )
    assert check_budget([], EVENT, **kwargs).allowed
    assert not check_budget([_entry("run-a", 1)], EVENT, **kwargs).allowed


def test_lifetime_budget_refused_across_runs() -> None:
    entries = [_entry(f"run-{i}", 1) for i in range(4)]
    before = rdp_epsilon([EVENT] * 4, DELTA)
    after = rdp_epsilon([EVENT] * 5, DELTA)
    decision = check_budget(
        entries,
        EVENT,
        site_id="hospital-berlin",
        run_id="run-new",
        round_=1,
        epsilon_per_round=10.0,
        lifetime_epsilon=(before + after) / 2,
        delta=DELTA,
        policy_id="eu-health",
    )
    assert not decision.allowed
    assert "lifetime" in decision.reason and "eu-health dp.lifetime_epsilon" in decision.reason
    assert decision.lifetime_before == pytest.approx(before)


def test_non_private_entry_exhausts_lifetime() -> None:
    dp_off = _entry("run-x", 1, event=DpSgdEvent(0.0, 0.0, 0, non_private=True))
    assert dp_off.epsilon is None  # JSON has no infinity
    assert math.isinf(rdp_epsilon([dp_off.event], DELTA))
    decision = check_budget(
        [dp_off],
        EVENT,
        site_id="hospital-berlin",
        run_id="run-y",
        round_=1,
        epsilon_per_round=10.0,
        lifetime_epsilon=1000.0,
        delta=DELTA,
        policy_id="eu-health",
    )
    assert not decision.allowed


def test_next_attempt_and_keys() -> None:
    entries = [_entry("run-a", 1, 1), _entry("run-a", 1, 2), _entry("run-a", 2, 1)]
    assert next_attempt(entries, "run-a", 1) == 3
    assert next_attempt(entries, "run-a", 3) == 1
    assert entry_key("s-1", "run-a", 2, 3) == "ledger/s-1/run-a/round-0002/attempt-0003.json"
    with pytest.raises(LedgerError, match="run id"):
        entry_key("s-1", "../other", 1, 1)


def test_malformed_entry_is_refused() -> None:
    with pytest.raises(LedgerError, match="ledger/x"):
        LedgerEntry.from_json(b'{"run_id": 1}', where="ledger/x")


def test_entries_state_whether_their_epsilon_is_proven() -> None:
    import json

    from components.privacy.accounting import SAMPLING_NOT_PROVEN, SAMPLING_PROVEN

    poisson = _entry("run-a", 1)
    assert poisson.sampling == "poisson" and poisson.guarantee == SAMPLING_PROVEN
    shuffled = new_entry(
        **{
            **{k: getattr(poisson, k) for k in ("run_id", "site_id", "attempt", "delta")},
            "round_": 2,
            "event": EVENT,
            "batch_size": 16,
            "epochs": 2,
            "num_examples": 151,
            "l2_norm_clip": 1.0,
            "created_at": "2026-11-27T08:00:00Z",
            "sampling": "shuffle",
        }
    )
    assert shuffled.guarantee == SAMPLING_NOT_PROVEN and "not proven" in shuffled.guarantee
    assert ledger_summary([poisson, shuffled], DELTA)["not_proven_entries"] == 1
    # an entry written before sampling was recorded was shuffled: it reads as not proven
    legacy = json.loads(poisson.to_json())
    del legacy["sampling"], legacy["guarantee"]
    old = LedgerEntry.from_json(json.dumps(legacy).encode())
    assert old.sampling == "shuffle" and old.guarantee == SAMPLING_NOT_PROVEN
    bad = {**json.loads(poisson.to_json()), "sampling": "uniform", "guarantee": ""}
    with pytest.raises(LedgerError, match="uniform"):
        LedgerEntry.from_json(json.dumps(bad).encode())


def test_a_statistics_release_is_a_stats_entry_composed_with_training() -> None:
    import json

    from components.datasets.federated_stats import stats_event
    from components.privacy.ledger import KIND_STATS, check_run_budget, new_stats_entry

    stats = new_stats_entry(
        run_id="run-a",
        site_id="hospital-berlin",
        attempt=1,
        event=stats_event(4.0),
        delta=DELTA,
        num_examples=151,
        created_at="2026-11-27T07:59:00Z",
    )
    assert (stats.kind, stats.round, stats.sampling_rate, stats.steps) == (KIND_STATS, 0, 1.0, 1)
    assert stats.key == "ledger/hospital-berlin/run-a/round-0000/attempt-0001.json"
    assert stats.epsilon == pytest.approx(rdp_epsilon([stats.event], DELTA))
    assert LedgerEntry.from_json(stats.to_json()) == stats
    train = _entry("run-a", 1)
    total = ledger_summary([stats, train], DELTA)["lifetime_epsilon"]
    assert total == pytest.approx(rdp_epsilon([stats.event, EVENT], DELTA))
    assert total > max(stats.epsilon, train.epsilon)
    # the statistics round is not a training round: both rounds of run-a remain to be paid
    decision = check_run_budget(
        [stats],
        EVENT,
        rounds=2,
        site_id="hospital-berlin",
        run_id="run-a",
        lifetime_epsilon=100.0,
        delta=DELTA,
        policy_id="eu-health",
    )
    assert decision.lifetime_after == pytest.approx(rdp_epsilon([stats.event, EVENT, EVENT], DELTA))
    # entries written before kinds existed read as training; an unknown kind is refused
    legacy = json.loads(train.to_json())
    del legacy["kind"]
    assert LedgerEntry.from_json(json.dumps(legacy).encode()).kind == "training"
    with pytest.raises(LedgerError, match="kind 'stat'"):
        LedgerEntry.from_json(json.dumps({**legacy, "kind": "stat"}).encode())
    with pytest.raises(LedgerError, match="q = 1, steps = 1"):
        new_stats_entry(
            run_id="run-a",
            site_id="hospital-berlin",
            attempt=2,
            event=EVENT,
            delta=DELTA,
            num_examples=151,
            created_at="2026-11-27T07:59:00Z",
        )


def test_the_run_preflight_counts_the_statistics_release_until_it_is_charged() -> None:
    from components.datasets.federated_stats import stats_event
    from components.privacy.ledger import check_run_budget, new_stats_entry

    release = stats_event(4.0)
    kwargs = dict(
        rounds=2,
        site_id="hospital-berlin",
        run_id="run-a",
        lifetime_epsilon=rdp_epsilon([EVENT, EVENT], DELTA) + 0.01,  # two rounds just fit
        delta=DELTA,
        policy_id="eu-health",
    )
    assert check_run_budget([], EVENT, **kwargs).allowed
    refused = check_run_budget([], EVENT, planned_stats=release, **kwargs)
    assert not refused.allowed
    assert refused.lifetime_after == pytest.approx(rdp_epsilon([release, EVENT, EVENT], DELTA))
    assert "2 remaining round(s) and its feature statistics would take" in refused.reason
    charged = new_stats_entry(
        run_id="run-b",
        site_id="hospital-berlin",
        attempt=1,
        event=release,
        delta=DELTA,
        num_examples=151,
        created_at="2026-11-27T07:59:00Z",
    )
    # charged in another run: it counts as spent, the planned one again
    assert not check_run_budget([charged], EVENT, planned_stats=release, **kwargs).allowed
    same_run = LedgerEntry(**{**charged.__dict__, "run_id": "run-a"})
    paid = check_run_budget([same_run], EVENT, planned_stats=release, **kwargs)
    assert paid.lifetime_after == pytest.approx(rdp_epsilon([release, EVENT, EVENT], DELTA))
