"""Build the run summary from round reports and per-site evaluations (pure, no I/O).

Inputs are the parsed JSON documents of the contract (components/CONTRACT.md):
round reports (`round.json` of aggregate) and evaluations (`metrics.json` of evaluate).
The summary is what `summary.json`, the HTML report and the Markdown report show.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

SUMMARY_VERSION = "fedpipe.dev/run-summary/v1"
REGRESSION_KEYS = ("mae", "rmse", "r2")


class SummaryError(ValueError):
    """Round reports or evaluations that cannot be combined into a summary."""


def _float_or_none(value: Any) -> float | None:
    if value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def epsilon_of(entry: Any) -> tuple[float | None, float | None]:
    """(RDP epsilon, PLD epsilon) from one site's epsilon entry of a round report.

    Accepts a number (RDP only) or a mapping with `epsilon`/`rdp` and `epsilon_pld`/`pld` keys.
    """
    if isinstance(entry, Mapping):
        rdp = entry.get("epsilon", entry.get("rdp", entry.get("epsilon_rdp")))
        pld = entry.get("epsilon_pld", entry.get("pld"))
        return _float_or_none(rdp), _float_or_none(pld)
    return _float_or_none(entry), None


def weighted_mean(pairs: Iterable[tuple[float, float]]) -> float | None:
    """Mean of values weighted by counts: pairs of (value, weight); None when no weight."""
    total_w = 0.0
    total = 0.0
    for value, weight in pairs:
        total += value * weight
        total_w += weight
    return total / total_w if total_w > 0 else None


def _round_of(doc: Mapping[str, Any], what: str) -> int:
    try:
        return int(doc["round"])
    except (KeyError, TypeError, ValueError) as exc:
        raise SummaryError(f"{what} has no integer 'round' field") from exc


def build_summary(
    round_reports: Iterable[Mapping[str, Any]],
    evaluations: Iterable[Mapping[str, Any]],
    *,
    run_id: str = "",
    dataset: str = "",
    model_name: str = "",
    sites: Iterable[str] | None = None,
    test_accuracy: Mapping[int, Mapping[str, float | None]] | None = None,
    baseline: Mapping[str, Any] | None = None,
    ledgers: Mapping[str, Mapping[str, Any]] | None = None,
    dp_enabled: bool | None = None,
    validations: Mapping[str, Mapping[str, Any]] | None = None,
    composed: Mapping[str, Mapping[int, tuple[float | None, float | None]]] | None = None,
    task: str | None = None,
) -> dict[str, Any]:
    """Combine round reports and evaluations into the run summary.

    round_reports: `round.json` documents (`round`, `version`, `contributors`, `abstained`,
      `rejected`, `rule`, `epsilon` {site: entry}); one per round.
    evaluations: `metrics.json` documents (`site_id`, `round`, `accuracy`, `loss`, `auc`,
      `num_examples`, `confusion_matrix`, `labels`); one per (round, site).
    test_accuracy: optional {round: {"accuracy", "loss"}} of the global model on the pooled
      test set (computed on the host after a local run).
    baseline: optional centralized baseline {"test_accuracy", "test_loss", ...}.
    ledgers: optional {site: ledger summary} as read from the sites' buckets; when given its
      `epsilon`/`epsilon_pld` totals are the authoritative totals.
    validations: optional {site: validate's `summary.json`}; passed/row count/reason only.
    composed: optional {site: {round: (RDP, PLD)}}: the run's epsilon up to that round,
      composed by an accountant (from the ledger). Without it the cumulative figures are the
      sum of the per-round epsilons, an upper bound.
    task: the contract's task (binary, multiclass, regression); None = read from the
      evaluations (`task`), else classification. Regression adds MAE, RMSE and R² per site
      and round (`mae`, `rmse`, `r2`), pooled over the site holdouts (MAE weighted by rows,
      RMSE as the root of the weighted mean square; R² weighted, an approximation), the
      pooled-test figures `test_mae`, `test_rmse`, `test_r2` and the summed residual
      histogram in `final` instead of a confusion matrix.
    Returns a JSON-serialisable dict (see README, "What `make run` writes"); with secure
    aggregation also `protection`: what the coordinator could not check, and why (the round
    reports' `notes.protection`).
    """
    reports = sorted(round_reports, key=lambda d: _round_of(d, "round report"))
    seen_rounds = [_round_of(r, "round report") for r in reports]
    if len(set(seen_rounds)) != len(seen_rounds):
        raise SummaryError(f"duplicate round reports for rounds {seen_rounds}")
    evals_by_round: dict[int, dict[str, Mapping[str, Any]]] = {}
    for ev in evaluations:
        rnd = _round_of(ev, "evaluation")
        site = ev.get("site_id")
        if not site:
            raise SummaryError(f"evaluation of round {rnd} has no 'site_id'")
        evals_by_round.setdefault(rnd, {})[str(site)] = ev

    site_ids: set[str] = set(sites or [])
    for r in reports:
        site_ids.update(r.get("contributors") or [])
        site_ids.update((r.get("abstained") or {}).keys())
        site_ids.update((r.get("rejected") or {}).keys())
        site_ids.update((r.get("epsilon") or {}).keys())
    for per_site in evals_by_round.values():
        site_ids.update(per_site)
    site_ids.update((validations or {}).keys())
    ordered_sites = sorted(site_ids)

    cumulative: dict[str, dict[str, float]] = {s: {"rdp": 0.0, "pld": 0.0} for s in ordered_sites}
    all_rounds = sorted(set(seen_rounds) | set(evals_by_round))
    by_number = {_round_of(r, "round report"): r for r in reports}
    rounds_out: list[dict[str, Any]] = []
    for rnd in all_rounds:
        rep = by_number.get(rnd, {})
        evs = evals_by_round.get(rnd, {})
        per_site: dict[str, dict[str, Any]] = {}
        for site in ordered_sites:
            ev = evs.get(site)
            eps_rdp, eps_pld = epsilon_of((rep.get("epsilon") or {}).get(site))
            if eps_rdp is not None:
                cumulative[site]["rdp"] += eps_rdp
            if eps_pld is not None:
                cumulative[site]["pld"] += eps_pld
            exact = (composed or {}).get(site, {}).get(rnd)
            if exact is not None:
                if exact[0] is not None:
                    cumulative[site]["rdp"] = float(exact[0])
                if exact[1] is not None:
                    cumulative[site]["pld"] = float(exact[1])
            if ev and task is None and ev.get("task"):
                task = str(ev.get("task"))
            per_site[site] = {
                "accuracy": _float_or_none(ev.get("accuracy")) if ev else None,
                "loss": _float_or_none(ev.get("loss")) if ev else None,
                "auc": _float_or_none(ev.get("auc")) if ev else None,
                **{k: (_float_or_none(ev.get(k)) if ev else None) for k in REGRESSION_KEYS},
                "num_examples": int(ev.get("num_examples") or 0) if ev else 0,
                "epsilon": eps_rdp,
                "epsilon_pld": eps_pld,
                "epsilon_cumulative": cumulative[site]["rdp"],
                "epsilon_pld_cumulative": cumulative[site]["pld"],
            }
        weights = [
            (v, float(per_site[s]["num_examples"] or 1))
            for s, v in ((s, per_site[s]["accuracy"]) for s in ordered_sites)
            if v is not None
        ]
        loss_weights = [
            (v, float(per_site[s]["num_examples"] or 1))
            for s, v in ((s, per_site[s]["loss"]) for s in ordered_sites)
            if v is not None
        ]
        test = (test_accuracy or {}).get(rnd) or {}

        def pooled(key: str, per: dict[str, dict[str, Any]] = per_site) -> float | None:
            return weighted_mean(
                (per[s][key], float(per[s]["num_examples"] or 1))
                for s in ordered_sites
                if per[s][key] is not None
            )

        mse = pooled("loss")
        regression_global = {
            "mae": pooled("mae"),
            "rmse": math.sqrt(mse) if mse is not None and pooled("rmse") is not None else None,
            "r2": pooled("r2"),
            **{f"test_{k}": _float_or_none(test.get(k)) for k in REGRESSION_KEYS},
        }
        rounds_out.append(
            {
                "round": rnd,
                "version": rep.get("version"),
                "rule": rep.get("rule"),
                "contributors": sorted(rep.get("contributors") or []),
                "abstained": dict(sorted((rep.get("abstained") or {}).items())),
                "rejected": dict(sorted((rep.get("rejected") or {}).items())),
                "flagged": dict(sorted(((rep.get("anomaly") or {}).get("flagged") or {}).items())),
                # why nothing was scored (protection he: the coordinator sees no update)
                "screening_off": (rep.get("anomaly") or {}).get("off"),
                "membership": membership_table(evs),
                "global": {
                    "accuracy": weighted_mean(weights),
                    "loss": weighted_mean(loss_weights),
                    "test_accuracy": _float_or_none(test.get("accuracy")),
                    "test_loss": _float_or_none(test.get("loss")),
                    **regression_global,
                },
                "sites": per_site,
            }
        )

    totals: dict[str, dict[str, Any]] = {}
    for site in ordered_sites:
        entry: dict[str, Any] = {
            "rdp": cumulative[site]["rdp"],
            "pld": cumulative[site]["pld"],
            "source": "round reports (sum)",
        }
        ledger = (ledgers or {}).get(site)
        if ledger:
            rdp, pld = epsilon_of(ledger)
            if rdp is not None:
                entry["rdp"] = rdp
                entry["pld"] = pld
                entry["source"] = "site ledger"
        totals[site] = entry

    final = _final(rounds_out, evals_by_round)
    # secagg: what the coordinator could not check (aggregate's round notes say why)
    protection = next(
        (
            (rep.get("notes") or {}).get("protection")
            for rep in reports
            if (rep.get("notes") or {}).get("protection")
        ),
        None,
    )
    # distributed DP: the mode and the honest-site assumption its epsilon rests on
    dp_mode = next(
        (
            (rep.get("notes") or {}).get("dp")
            for rep in reports
            if isinstance((rep.get("notes") or {}).get("dp"), dict)
        ),
        None,
    )
    summary: dict[str, Any] = {
        "version": SUMMARY_VERSION,
        "run_id": run_id,
        "dataset": dataset,
        "task": task or "classification",
        "model": model_name,
        "dp_enabled": dp_enabled,
        "sites": ordered_sites,
        "rounds": rounds_out,
        "epsilon_total": totals,
        "epsilon_cumulative_method": (
            "composed (site ledger)" if composed else "sum of per-round epsilons (upper bound)"
        ),
        "validation": {
            site: {
                "passed": bool(v.get("passed")),
                "row_count": v.get("row_count"),
                "reason": v.get("reason"),
            }
            for site, v in sorted((validations or {}).items())
        },
        "final": final,
        "membership_above_bound": membership_above_bound(rounds_out),
        "baseline": dict(baseline) if baseline else None,
    }
    if protection:
        summary["protection"] = protection
    if dp_mode:
        summary["dp_mode"] = {
            "mode": dp_mode.get("mode"),
            "honest_sites": dp_mode.get("honest_sites"),
            "trust": dp_mode.get("trust"),
        }
    return summary


def membership_above_bound(rounds_out: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Every (site, round) whose membership-inference advantage is above the bound its
    (ε, δ) allowed at that round, by site then round."""
    found = [
        {"site": site, "round": r["round"], "advantage": m["advantage"], "bound": m["bound"]}
        for r in rounds_out
        for site, m in (r.get("membership") or {}).items()
        if m["above_bound"]
    ]
    return sorted(found, key=lambda x: (x["site"], x["round"]))


def _final(
    rounds_out: list[dict[str, Any]], evals_by_round: Mapping[int, Mapping[str, Mapping[str, Any]]]
) -> dict[str, Any]:
    """Final-round figures and the summed confusion matrix (null cells stay suppressed)."""
    if not rounds_out:
        return {
            "round": None,
            "accuracy": None,
            "loss": None,
            "test_accuracy": None,
            "labels": [],
            "confusion_matrix": [],
            "confusion_suppressed": [],
            "membership": {},
            "membership_above_bound": [],
        }
    last = rounds_out[-1]
    evals = list(evals_by_round.get(last["round"], {}).values())
    labels, matrix, hidden = sum_confusion(evals)
    g = last["global"]
    membership = membership_table(evals_by_round.get(last["round"], {}))
    return {
        "round": last["round"],
        "accuracy": g["accuracy"],
        "loss": g["loss"],
        "test_accuracy": g["test_accuracy"],
        "test_loss": g["test_loss"],
        **{k: g.get(k) for k in REGRESSION_KEYS},
        **{f"test_{k}": g.get(f"test_{k}") for k in REGRESSION_KEYS},
        "labels": labels,
        "confusion_matrix": matrix,
        "confusion_suppressed": hidden,
        "residual_histogram": sum_histograms(evals),
        "membership": membership,
        "membership_above_bound": sorted(s for s, m in membership.items() if m["above_bound"]),
    }


def sum_histograms(evaluations: Iterable[Mapping[str, Any]]) -> dict[str, Any] | None:
    """Bin-wise sum of the sites' revealed residual-histogram counts (regression); a bin any
    site suppressed is a lower bound, `suppressed` counts those sites per bin."""
    edges: list[float] | None = None
    counts: list[int] = []
    hidden: list[int] = []
    for ev in evaluations:
        hist = ev.get("residual_histogram")
        if not hist:
            continue
        if edges is None:
            edges = list(hist["edges"])
            counts = [0] * (len(edges) + 1)
            hidden = [0] * (len(edges) + 1)
        if list(hist["edges"]) != edges:
            raise SummaryError(f"site {ev.get('site_id')}: residual histogram edges differ")
        for i, c in enumerate(hist["counts"]):
            if c is None:
                hidden[i] += 1
            else:
                counts[i] += int(c)
    if edges is None:
        return None
    return {"edges": edges, "counts": counts, "suppressed": hidden}


def membership_table(evaluations: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """{site: its membership-inference audit of one round's global model} (what the site's
    evaluate reported: both attacks' AUC and advantage, the bound its (ε, δ) allows, whether
    the larger advantage is above it); sites that did not report one are left out."""
    out: dict[str, dict[str, Any]] = {}
    for site, ev in sorted(evaluations.items()):
        m = ev.get("membership")
        if not isinstance(m, Mapping):
            continue
        advantages = [_float_or_none((m.get(a) or {}).get("advantage")) for a in ATTACKS]
        out[site] = {
            **{
                a: {
                    "auc": _float_or_none((m.get(a) or {}).get("auc")),
                    "advantage": _float_or_none((m.get(a) or {}).get("advantage")),
                }
                for a in ATTACKS
            },
            "advantage": max((v for v in advantages if v is not None), default=None),
            "bound": _float_or_none(m.get("bound")),
            "epsilon": _float_or_none(m.get("epsilon")),
            "delta": _float_or_none(m.get("delta")),
            "disclosure": m.get("disclosure"),
            "above_bound": bool(m.get("above_bound")),
        }
    return out


ATTACKS = ("loss_threshold", "logistic")


def sum_confusion(
    evaluations: Iterable[Mapping[str, Any]],
) -> tuple[list[Any], list[list[int]], list[list[int]]]:
    """Cell-wise sum of the sites' revealed confusion-matrix counts.

    Returns (labels, counts, suppressed): `counts` adds only the cells a site revealed, so a
    cell that any site suppressed (null: below its policy's minimum) is a lower bound;
    `suppressed` counts, per cell, the sites that suppressed it. Summing revealed counts
    discloses nothing a site did not already disclose.
    """
    labels: list[Any] = []
    total: list[list[int]] | None = None
    hidden: list[list[int]] = []
    for ev in evaluations:
        matrix = ev.get("confusion_matrix")
        if not matrix:
            continue
        ev_labels = list(ev.get("labels") or range(len(matrix)))
        if total is None:
            labels = ev_labels
            total = [[0 for _ in row] for row in matrix]
            hidden = [[0 for _ in row] for row in matrix]
        if ev_labels != labels or len(matrix) != len(total):
            raise SummaryError(
                f"site {ev.get('site_id')}: confusion matrix labels {ev_labels} differ from {labels}"
            )
        for i, row in enumerate(matrix):
            for j, cell in enumerate(row):
                if cell is None:
                    hidden[i][j] += 1
                else:
                    total[i][j] += int(cell)
    return labels, total or [], hidden


def kfp_metrics(summary: Mapping[str, Any]) -> dict[str, float]:
    """Scalar metrics for the KFP UI (`dsl.Metrics`): final accuracy/loss, epsilon per site."""
    out: dict[str, float] = {}
    final = summary.get("final") or {}
    keys = ("accuracy", "loss", "test_accuracy", "test_loss")
    keys += REGRESSION_KEYS + tuple(f"test_{k}" for k in REGRESSION_KEYS)
    for key in keys:
        value = _float_or_none(final.get(key))
        if value is not None:
            out[f"final_{key}"] = value
    for site, entry in (summary.get("epsilon_total") or {}).items():
        for kind in ("rdp", "pld"):
            value = _float_or_none(entry.get(kind))
            if value is not None:
                out[f"epsilon_{kind}_{site}"] = value
    for site, m in (final.get("membership") or {}).items():
        for attack in ATTACKS:
            value = _float_or_none((m.get(attack) or {}).get("advantage"))
            if value is not None:
                out[f"membership_advantage_{attack}_{site}"] = value
        value = _float_or_none(m.get("bound"))
        if value is not None:
            out[f"membership_bound_{site}"] = value
    baseline = summary.get("baseline") or {}
    for key in ("test_accuracy", *(f"test_{k}" for k in REGRESSION_KEYS)):
        value = _float_or_none(baseline.get(key))
        if value is not None:
            out[f"baseline_{key}"] = value
    return out
