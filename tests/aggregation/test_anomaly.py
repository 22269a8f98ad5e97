"""Anomaly scores and their reasons against hand-computed values; site health over rounds."""

from __future__ import annotations

import math

import numpy as np
import pytest

from components.aggregation.anomaly import SiteScore, Thresholds, score_round
from components.aggregation.site_health import advance, quarantined


def upd(kernel, bias=(0.0,)) -> dict[str, np.ndarray]:
    return {"kernel": np.asarray(kernel, np.float32), "bias": np.asarray(bias, np.float32)}


# honest kernels (2,0) (0,2) (2,2) (1,1): with a fifth update the coordinate-wise median is
# (1, 1) and the median kernel norm 2 whenever the fifth is far out on the negative side
HONEST = {"s1": upd([2, 0]), "s2": upd([0, 2]), "s3": upd([2, 2]), "s4": upd([1, 1])}


def by_site(scores):
    return {s.site: s for s in scores}


def test_a_scaled_sign_flip_is_flagged_on_every_score_naming_the_tensor():
    scores = by_site(score_round({**HONEST, "s5": upd([-20, -20])}))
    s5 = scores["s5"]
    # norm 20√2 over the median kernel norm 2; cosine −40 / (20√2 · √2) = −1;
    # distance to (1, 1) is 21√2 over the median distance √2. (1, 1) is also the robust centre:
    # the geometric median of the five (on the diagonal by symmetry, where the one-sided
    # derivatives at t = 1 are −√2 and +√2) and of the four left after the screen drops s5
    # (cosine −1); smoothed Weiszfeld reaches a centre on a data point only to ≈ 0.5 %
    assert s5.norm_ratios["kernel"] == pytest.approx(10 * math.sqrt(2))
    assert s5.norm_ratios["bias"] == 1.0  # 0 over a median of 0
    assert s5.cosine == pytest.approx(-1.0)
    assert s5.distance_ratio == pytest.approx(21.0, rel=5e-3)
    assert s5.explanation == (
        "s5: kernel norm 14.1× the median; cosine -1.00 to the robust centre (kernel -1.00); "
        "distance to the robust centre 21.0× the median (mostly kernel)"
    )
    assert [s.site for s in scores.values() if s.flagged] == ["s5"]
    assert scores["s1"].cosine == pytest.approx(1 / math.sqrt(2))
    assert scores["s4"].distance == pytest.approx(0.0, abs=1e-2) and scores["s4"].explanation == ""


def test_a_plain_sign_flip_is_flagged_by_its_cosine_alone():
    # (−1, −1): norm √2 (ratio 0.71), distance 2√2 (ratio 2), cosine −1
    s5 = by_site(score_round({**HONEST, "s5": upd([-1, -1])}))["s5"]
    assert s5.distance_ratio == pytest.approx(2.0, rel=5e-3)
    assert s5.explanation == "s5: cosine -1.00 to the robust centre (kernel -1.00)"


def test_thresholds_decide_and_fewer_than_three_updates_flag_nothing():
    ups = {**HONEST, "s5": upd([-1, -1])}
    loose = Thresholds(norm_ratio=100, min_cosine=-1.5, distance_ratio=100)
    assert not any(s.flagged for s in score_round(ups, loose))
    strict = Thresholds(distance_ratio=1.5)
    assert (
        "distance to the robust centre 2.0×" in by_site(score_round(ups, strict))["s5"].explanation
    )
    two = score_round({"a": upd([1, 0]), "b": upd([-100, 0])})
    assert [s.flagged for s in two] == [False, False]
    assert score_round({}) == []


def test_a_site_flagged_in_most_earlier_rounds_stays_flagged_while_its_cosine_is_low():
    """s5 (1, −0.8): cosine 0.2 / (√1.64 · √2) = 0.110 to the centre ≈ (1, 1), kernel norm
    ratio √1.64 / 2 = 0.64, distance 1.8 over the median √2 = 1.27: no single-round rule
    flags it. The round's median cosine is 1/√2 (s1, s2 at 1/√2; s3, s4 at 1). With a
    history of flags in more than half of at least 3 earlier rounds it stays flagged, the
    reason saying why; a flagged history with a cosine at or above the median does not."""
    ups = {**HONEST, "s5": upd([1.0, -0.8])}
    plain = by_site(score_round(ups))["s5"]
    assert plain.cosine == pytest.approx(0.2 / math.sqrt(1.64 * 2), abs=0.02)
    assert plain.norm_ratios["kernel"] == pytest.approx(math.sqrt(1.64) / 2)
    assert plain.distance_ratio == pytest.approx(1.8 / math.sqrt(2), rel=0.05)
    assert not plain.flagged
    for scored, flagged in ((3, 1), (2, 2), (4, 2)):  # not more than half, or < 3 rounds
        assert not by_site(score_round(ups, history={"s5": (scored, flagged)}))["s5"].flagged
    history = {"s5": (3, 2), "s3": (10, 10)}  # s3's cosine 1 is above the median
    scores = by_site(score_round(ups, history=history))
    s5 = scores["s5"]
    assert [s.site for s in scores.values() if s.flagged] == ["s5"]
    median = 1 / math.sqrt(2)
    assert s5.explanation == (
        f"s5: cosine {s5.cosine:+.2f} to the robust centre (kernel "
        f"{s5.tensor_cosines['kernel']:+.2f}), below the round's median {median:+.2f}, after "
        f"flags in 2 of its 3 earlier rounds"
    )
    assert f"{median:+.2f}" == "+0.71" and f"{s5.cosine:+.2f}" == "+0.11"
    loose = Thresholds(persist_share=0.7)  # 2 of 3 is not more than 70 %
    assert not by_site(score_round(ups, loose, history))["s5"].flagged


def test_health_history_is_what_the_scores_weigh():
    from components.aggregation.site_health import history

    health, _ = advance({}, score_round({**HONEST, "s5": upd([-1, -1])}), 1, None)
    assert history(health) == {"s1": (1, 0), "s2": (1, 0), "s3": (1, 0), "s4": (1, 0), "s5": (1, 1)}


def test_report_json_is_rounded_and_null_for_undefined_cosines():
    zero = {"a": upd([0, 0]), "b": upd([0, 0]), "c": upd([0, 0])}
    row = score_round(zero)[0].as_json()
    assert row == {
        "norm": 0.0,
        "max_norm_ratio": 1.0,
        "cosine": None,
        "distance_ratio": 1.0,
        "flagged": False,
        "reason": "",
    }


def score(site: str, flagged: bool) -> SiteScore:
    reasons = ["kernel norm 9.8× the median"] if flagged else []
    return SiteScore(site, 1.0, {}, {}, 1.0, {}, 0.0, 1.0, reasons)


def test_quarantine_after_k_consecutive_flagged_rounds():
    health: dict = {}
    health, new = advance(health, [score("a", True), score("b", False)], 1, 2)
    assert new == {} and health["a"]["consecutive"] == 1
    health, new = advance(health, [score("a", False), score("b", True)], 2, 2)
    assert new == {} and health["a"]["consecutive"] == 0  # not consecutive: reset
    health, new = advance(health, [score("a", True), score("b", True)], 3, 2)
    assert list(new) == ["b"]
    assert new["b"] == (
        "quarantined in round 3: flagged in 2 consecutive rounds (policy quarantine_after=2); "
        "last: b: kernel norm 9.8× the median"
    )
    assert health["b"] == {
        "scored": 3,
        "flagged": 2,
        "consecutive": 2,
        "quarantined": {"round": 3, "reason": new["b"]},
        "last_reason": "b: kernel norm 9.8× the median",
    }
    assert quarantined(health) == {"b": new["b"]}
    before = {k: dict(v) for k, v in health.items()}
    _, again = advance(health, [score("b", True)], 4, 2)
    assert again == {} and health == before  # stays quarantined once; input not modified


def test_without_a_quarantine_policy_flags_are_only_counted():
    health: dict = {}
    for r in range(1, 6):
        health, new = advance(health, [score("a", True)], r, None)
        assert new == {}
    assert health["a"]["flagged"] == 5 and quarantined(health) == {}
    with pytest.raises(ValueError, match="quarantine_after must be ≥ 1"):
        advance({}, [], 1, 0)


def test_screening_weighs_the_health_it_carries():
    """The aggregate step passes the previous model's health to the scores: s5, flagged in 3
    of 4 earlier rounds, stays flagged with a low cosine; the new health counts it."""
    from components.aggregation.collect import Collected
    from components.aggregation.screening import screen
    from components.aggregation.verify import VerifiedUpdate

    ups = {**HONEST, "s5": upd([1.0, -0.8])}
    collected = Collected(
        verified={s: VerifiedUpdate(s, t, None, 0) for s, t in ups.items()}  # type: ignore[arg-type]
    )
    health = {"s5": {"scored": 4, "flagged": 3, "consecutive": 1, "quarantined": None}}
    out = screen(collected, health, round_index=5, quarantine_after=None)
    assert list(out.report["flagged"]) == ["s5"]
    assert out.report["flagged"]["s5"].endswith("after flags in 3 of its 4 earlier rounds")
    assert out.health["s5"]["scored"] == 5 and out.health["s5"]["flagged"] == 4
    assert out.report["thresholds"]["persist_min_rounds"] == 3
