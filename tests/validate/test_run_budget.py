"""The run's privacy pre-flight: a run that cannot be afforded stops before anyone trains."""

from __future__ import annotations

import json

import pytest

from components.common.site_task import call_with_task
from components.privacy.accounting import DpSgdEvent, dp_sgd_event, rdp_epsilon
from components.privacy.dp_off import DpPolicyError
from components.privacy.ledger import check_run_budget, new_entry
from components.privacy.ledger_store import LedgerStore
from components.validate.executor import run as _validate_run_executor
from tests.support.site_env import make_site_env
from tests.support.site_inputs import contract_json


def validate_run(**inputs):  # as the component calls it
    return call_with_task(_validate_run_executor, inputs)


DELTA = 1e-5
EVENT = DpSgdEvent(sampling_rate=16 / 151, noise_multiplier=1.5, steps=18)


def _entry(run: str, round_: int, site: str = "hospital-berlin"):
    return new_entry(
        run_id=run,
        round_=round_,
        site_id=site,
        attempt=1,
        event=EVENT,
        delta=DELTA,
        batch_size=16,
        epochs=2,
        num_examples=151,
        l2_norm_clip=1.0,
        created_at="2026-11-27T08:00:00Z",
        sampling="poisson",
    )


def _decide(entries, rounds: int, lifetime: float, run: str = "run-b"):
    return check_run_budget(
        entries,
        EVENT,
        rounds=rounds,
        site_id="hospital-berlin",
        run_id=run,
        lifetime_epsilon=lifetime,
        delta=DELTA,
        policy_id="eu-health",
    )


def test_whole_run_is_composed_with_what_was_spent() -> None:
    spent = [_entry("run-a", 1), _entry("run-a", 2)]
    five_more = rdp_epsilon([EVENT] * 7, DELTA)
    ok = _decide(spent, rounds=5, lifetime=five_more + 1e-6)
    assert ok.allowed and ok.reason is None
    assert ok.lifetime_before == pytest.approx(rdp_epsilon([EVENT] * 2, DELTA), abs=1e-9)
    assert ok.lifetime_after == pytest.approx(five_more, abs=1e-9)
    refused = _decide(spent, rounds=5, lifetime=five_more - 1e-3)
    assert not refused.allowed
    assert "site hospital-berlin: this run's 5 remaining round(s)" in refused.reason
    assert "eu-health dp.lifetime_epsilon" in refused.reason


def test_resumed_run_pays_only_the_rounds_not_yet_charged() -> None:
    spent = [_entry("run-b", 1), _entry("run-b", 2)]  # this run already charged rounds 1, 2
    # only round 3 is left: the whole run fits a budget of exactly three rounds ...
    three = rdp_epsilon([EVENT] * 3, DELTA)
    decision = _decide(spent, rounds=3, lifetime=three + 1e-6)
    assert decision.allowed
    assert decision.lifetime_after == pytest.approx(three, abs=1e-9)
    # ... and a budget just below it names the one remaining round
    refused = _decide(spent, rounds=3, lifetime=three - 1e-3)
    assert "this run's 1 remaining round(s)" in refused.reason


@pytest.mark.integration
def test_validate_abstains_a_site_that_cannot_afford_the_run(minio, tmp_path, monkeypatch) -> None:
    env = make_site_env(minio, tmp_path, monkeypatch)
    store = LedgerStore(minio, env.bucket, env.site_id)
    n = len(minio.get_object(env.bucket, "data/train.csv").read().splitlines()) - 1
    planned = dp_sgd_event(n, 16, 1, 1.5)
    store.charge("earlier-run", 1, lambda a: _entry_for(env.site_id, a, planned))
    one_more = rdp_epsilon([planned] * 2, env.policy.dp.delta)  # the earlier run's + one
    two_more = rdp_epsilon([planned] * 3, env.policy.dp.delta)
    limit = round((one_more + two_more) / 2, 6)
    tight = env.with_policy({"dp": {"lifetime_epsilon": limit, "epsilon_per_round": limit}})
    kwargs = {
        **tight.common("this-run", 1),
        "dataset": "breast_cancer",
        "contract_json": contract_json("breast_cancer"),
        "summary": str(tmp_path / "summary"),
        "batch_size": 16,
        "local_epochs": 1,
        "noise_multiplier": 1.5,
        "dp_enabled": True,
        "client_factory": tight.factory(),
    }
    # one more round fits under the tightened lifetime budget ...
    body = validate_run(**kwargs, rounds=1)
    assert body["passed"] is True
    # ... two do not: the task does not fail; the site abstains with the reason (its train
    # then abstains in every round), and the summary says so
    body = validate_run(**{**kwargs, "summary": str(tmp_path / "summary2")}, rounds=2)
    written = json.loads((tmp_path / "summary2" / "summary.json").read_text())
    assert written == body and body["passed"] is False
    # (the example policy hides sample counts, so the reason names only the policy's limit)
    assert body["reason"] == (
        "site hospital-berlin abstains: privacy budget: this run's 2 remaining round(s) would "
        f"take its lifetime epsilon past eu-health dp.lifetime_epsilon {limit:g}; it abstains "
        "from this run before any training"
    )
    assert all(e["success"] for e in body["expectations"])  # the data itself passed
    assert [e.run_id for e in store.entries()] == ["earlier-run"]  # nothing charged
    # DP off or no planned rounds: no pre-flight
    assert validate_run(**{**kwargs, "dp_enabled": False}, rounds=2)["passed"] is True


def _entry_for(site_id: str, attempt: int, event: DpSgdEvent):
    return new_entry(
        run_id="earlier-run",
        round_=1,
        site_id=site_id,
        attempt=attempt,
        event=event,
        delta=1e-5,
        batch_size=16,
        epochs=1,
        num_examples=round(16 / event.sampling_rate),
        l2_norm_clip=1.0,
        created_at="2026-11-27T08:00:00Z",
        sampling="poisson",
    )


@pytest.mark.integration
def test_validate_refuses_dp_off_under_its_policy_before_reading_anything(
    minio, tmp_path, monkeypatch
) -> None:
    strict = make_site_env(
        minio, tmp_path, monkeypatch, policy_changes={"dp": {"allow_dp_off": False}}
    )
    kwargs = {
        **strict.common("dp-off-run", 1),
        "dataset": "breast_cancer",
        "contract_json": contract_json("breast_cancer"),
        "summary": str(tmp_path / "summary"),
        "rounds": 2,
        "batch_size": 16,
        "local_epochs": 1,
        "noise_multiplier": 1.5,
        "dp_enabled": False,
        "client_factory": strict.factory(),
    }
    with pytest.raises(DpPolicyError, match=r"hospital-berlin \(policy eu-health\)"):
        validate_run(**kwargs)
    assert not (tmp_path / "summary").exists()
    assert LedgerStore(minio, strict.bucket, strict.site_id).entries() == []
    # the same site under a policy that allows DP off passes validate
    allowed = strict.with_policy({"dp": {"allow_dp_off": True}})
    body = validate_run(**{**kwargs, **allowed.common("dp-off-run", 1)})
    assert body["passed"] is True
