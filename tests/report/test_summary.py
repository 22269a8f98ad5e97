"""build_summary on hand-written fixtures with hand-computed expectations."""

from __future__ import annotations

import pytest

from components.report.summary import (
    SummaryError,
    build_summary,
    epsilon_of,
    kfp_metrics,
    sum_confusion,
    weighted_mean,
)
from tests.support.report_fixtures import SITES, evaluation, evaluations, round_reports


def test_global_accuracy_is_example_weighted_mean_of_site_holdouts() -> None:
    s = build_summary(round_reports(), evaluations(), run_id="r1")
    r1, r2 = s["rounds"]
    # (0.5*10 + 0.8*30 + 0.9*60) / 100
    assert r1["global"]["accuracy"] == pytest.approx(0.83)
    assert r1["global"]["loss"] == pytest.approx(0.46)
    # (1.0*10 + 0.9*30 + 0.95*60) / 100
    assert r2["global"]["accuracy"] == pytest.approx(0.94)
    assert r2["global"]["loss"] == pytest.approx(0.22)
    assert s["final"]["accuracy"] == pytest.approx(0.94)
    assert s["sites"] == SITES


def test_epsilon_cumulates_per_site_and_missing_rounds_spend_nothing() -> None:
    s = build_summary(round_reports(), evaluations())
    r2 = s["rounds"][1]["sites"]
    assert r2["clinic-boston"]["epsilon"] is None
    assert r2["clinic-boston"]["epsilon_cumulative"] == pytest.approx(1.0)
    assert r2["hospital-berlin"]["epsilon_cumulative"] == pytest.approx(2.0)
    assert r2["hospital-paris"]["epsilon_pld_cumulative"] == pytest.approx(3.0)
    assert s["epsilon_total"]["hospital-paris"] == {
        "rdp": pytest.approx(4.0),
        "pld": pytest.approx(3.0),
        "source": "round reports (sum)",
    }


def test_ledger_totals_override_the_sum() -> None:
    ledgers = {"hospital-berlin": {"epsilon": 1.7, "epsilon_pld": 1.2}}
    s = build_summary(round_reports(), evaluations(), ledgers=ledgers)
    assert s["epsilon_total"]["hospital-berlin"]["rdp"] == pytest.approx(1.7)
    assert s["epsilon_total"]["hospital-berlin"]["source"] == "site ledger"
    assert s["epsilon_total"]["clinic-boston"]["source"] == "round reports (sum)"


def test_participation_and_reasons_are_kept() -> None:
    r2 = build_summary(round_reports(), evaluations())["rounds"][1]
    assert r2["contributors"] == ["hospital-berlin"]
    assert r2["abstained"] == {"clinic-boston": "lifetime budget would be exceeded"}
    assert r2["rejected"] == {"hospital-paris": "signature does not verify"}


def test_confusion_sum_adds_revealed_counts_and_counts_suppressions() -> None:
    s = build_summary(round_reports(), evaluations())
    assert s["final"]["labels"] == [0, 1]
    # boston [[5,-],[-,5]] + berlin [[14,-],[-,13]] + paris [[28,2],[1,29]]
    assert s["final"]["confusion_matrix"] == [[47, 2], [1, 47]]
    assert s["final"]["confusion_suppressed"] == [[0, 2], [2, 0]]
    labels, m, hidden = sum_confusion(e for e in evaluations() if e["round"] == 1)
    assert m == [[40, 11], [6, 43]] and hidden == [[0, 0], [0, 0]]


def test_confusion_label_mismatch_is_refused() -> None:
    a = evaluation("a", 1, 1.0, 0.0, 1, [[1, 0], [0, 1]])
    b = evaluation("b", 1, 1.0, 0.0, 1, [[1, 0], [0, 1]]) | {"labels": [1, 0]}
    with pytest.raises(SummaryError, match="site b"):
        sum_confusion([a, b])


def test_test_accuracy_and_baseline_flow_into_final_and_metrics() -> None:
    s = build_summary(
        round_reports(),
        evaluations(),
        test_accuracy={2: {"accuracy": 0.96, "loss": 0.12}},
        baseline={"test_accuracy": 0.97},
    )
    assert s["final"]["test_accuracy"] == pytest.approx(0.96)
    assert s["rounds"][0]["global"]["test_accuracy"] is None
    m = kfp_metrics(s)
    assert m["final_accuracy"] == pytest.approx(0.94)
    assert m["final_test_accuracy"] == pytest.approx(0.96)
    assert m["baseline_test_accuracy"] == pytest.approx(0.97)
    assert m["epsilon_rdp_hospital-paris"] == pytest.approx(4.0)
    assert m["epsilon_pld_clinic-boston"] == pytest.approx(0.8)


def test_duplicate_rounds_and_missing_fields_are_refused() -> None:
    with pytest.raises(SummaryError, match="duplicate"):
        build_summary(round_reports() + round_reports()[:1], [])
    with pytest.raises(SummaryError, match="site_id"):
        build_summary([], [{"round": 1, "accuracy": 1.0}])
    with pytest.raises(SummaryError, match="round"):
        build_summary([{"version": 1}], [])


def test_small_helpers() -> None:
    assert epsilon_of(2.5) == (2.5, None)
    assert epsilon_of({"rdp": 1.0, "pld": 0.5}) == (1.0, 0.5)
    assert epsilon_of({"epsilon": float("nan")}) == (None, None)
    assert weighted_mean([(1.0, 1.0), (0.0, 3.0)]) == pytest.approx(0.25)
    assert weighted_mean([]) is None


def test_empty_run_has_empty_final() -> None:
    s = build_summary([], [])
    assert s["rounds"] == [] and s["final"]["accuracy"] is None


def test_composed_cumulative_epsilon_replaces_the_sum() -> None:
    composed = {"hospital-berlin": {1: (1.5, 1.25), 2: (1.8, 1.4)}}
    s = build_summary(round_reports(), evaluations(), composed=composed)
    r2 = s["rounds"][1]["sites"]["hospital-berlin"]
    assert r2["epsilon"] == pytest.approx(0.5)  # this round alone, from the round report
    assert r2["epsilon_cumulative"] == pytest.approx(1.8)
    assert r2["epsilon_pld_cumulative"] == pytest.approx(1.4)
    assert s["rounds"][1]["sites"]["hospital-paris"]["epsilon_cumulative"] == pytest.approx(4.0)
    assert s["epsilon_cumulative_method"] == "composed (site ledger)"


def test_anomaly_flags_of_a_round_reach_the_summary_and_the_round_table() -> None:
    from components.report.render import ROUND_HEADER, round_rows

    reports = round_reports()
    reason = "hospital-berlin: output/kernel norm 9.8× the median"
    reports[0]["anomaly"] = {"flagged": {"hospital-berlin": reason}, "quarantined": {}}
    s = build_summary(reports, evaluations())
    assert s["rounds"][0]["flagged"] == {"hospital-berlin": reason}
    assert s["rounds"][1]["flagged"] == {}  # a round report from before anomaly scoring
    rows = round_rows(s)
    assert ROUND_HEADER[-1].startswith("anomalous updates")
    assert rows[0][-1] == reason and rows[1][-1] == "none"


def test_a_round_under_he_says_why_no_update_was_scored() -> None:
    from components.aggregation.executor import UNSCREENED_REPORT
    from components.report.render import round_rows

    reports = round_reports()
    reports[0]["anomaly"] = dict(UNSCREENED_REPORT)
    s = build_summary(reports, evaluations())
    assert s["rounds"][0]["screening_off"].startswith("aggregation.protection he")
    assert s["rounds"][1]["screening_off"] is None
    rows = round_rows(s)
    assert rows[0][-1] == f"not scored: {UNSCREENED_REPORT['off']}"
    assert rows[1][-1] == "none"


def _membership(advantage: float, bound: float, above: bool, eps: float | None) -> dict:
    return {
        "loss_threshold": {"auc": 0.5 + advantage / 2, "advantage": advantage},
        "logistic": {"auc": 0.52, "advantage": advantage / 2},
        "bound": bound,
        "epsilon": eps,
        "delta": 1e-5,
        "above_bound": above,
        "non_members": 30,
        "disclosure": "exact" if eps is not None else "dp_off",
    }


def test_final_membership_audit_per_site_and_the_sites_above_their_bound() -> None:
    evs = evaluations()
    last = {e["site_id"]: e for e in evs if e["round"] == 2}
    last["clinic-boston"]["membership"] = _membership(0.2, 0.9, False, 4.8)
    last["hospital-berlin"]["membership"] = _membership(0.4, 0.3, True, 0.6)
    last["hospital-paris"]["membership"] = None  # did not run it: left out
    summary = build_summary(round_reports(), evs)
    m = summary["final"]["membership"]
    assert sorted(m) == ["clinic-boston", "hospital-berlin"]
    assert m["hospital-berlin"]["advantage"] == 0.4  # the larger of the two attacks
    assert m["hospital-berlin"]["loss_threshold"] == {"auc": 0.7, "advantage": 0.4}
    assert (m["clinic-boston"]["bound"], m["clinic-boston"]["epsilon"]) == (0.9, 4.8)
    assert summary["final"]["membership_above_bound"] == ["hospital-berlin"]
    metrics = kfp_metrics(summary)
    assert metrics["membership_advantage_loss_threshold_hospital-berlin"] == 0.4
    assert metrics["membership_bound_clinic-boston"] == 0.9


def test_every_rounds_membership_audit_per_site_and_each_site_and_round_above_its_bound():
    evs = evaluations()
    audits = {
        (1, "clinic-boston"): _membership(0.5, 0.4, True, 0.8),
        (2, "clinic-boston"): _membership(0.3, 0.6, False, 1.6),
        (2, "hospital-paris"): _membership(0.7, 0.65, True, 1.6),
    }
    for ev in evs:
        ev["membership"] = audits.get((ev["round"], ev["site_id"]))
    summary = build_summary(round_reports(), evs)
    first, second = summary["rounds"]
    assert sorted(first["membership"]) == ["clinic-boston"]
    assert first["membership"]["clinic-boston"]["bound"] == 0.4
    assert sorted(second["membership"]) == ["clinic-boston", "hospital-paris"]
    assert summary["membership_above_bound"] == [
        {"site": "clinic-boston", "round": 1, "advantage": 0.5, "bound": 0.4},
        {"site": "hospital-paris", "round": 2, "advantage": 0.7, "bound": 0.65},
    ]
    assert summary["final"]["membership_above_bound"] == ["hospital-paris"]  # round 2 only


def test_a_secagg_run_says_robust_rules_are_off_and_why() -> None:
    from components.report.render import render_markdown
    from components.report.summary import build_summary

    note = "secagg (SecAgg+): robust rules, the FedAvg norm guard and per-update anomaly scoring are off: the coordinator sees only the sum"
    report = {"round": 1, "version": 1, "contributors": ["a", "b"], "rule": "fedavg"}
    summary = build_summary([{**report, "notes": {"protection": note}}], [], sites=["a", "b"])
    assert summary["protection"] == note
    assert f"| update protection | {note} |" in render_markdown(summary)
    assert "protection" not in build_summary([report], [], sites=["a", "b"])
