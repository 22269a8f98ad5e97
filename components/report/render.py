"""Render a run summary as a self-contained HTML page and as Markdown (pure, no I/O)."""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from typing import Any

from components.domain.markup import html_text, markdown_text
from components.report import plots


def _fmt(value: Any, digits: int = 4) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _pct(value: Any) -> str:
    return "–" if value is None else f"{100.0 * float(value):.2f}%"


def _reasons(mapping: Mapping[str, Any]) -> str:
    return "; ".join(f"{site}: {reason}" for site, reason in mapping.items()) or "none"


def headline(summary: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(label, value) pairs at the top of both reports."""
    final = summary.get("final") or {}
    rows = [
        ("run", str(summary.get("run_id") or "–")),
        ("dataset / model", f"{summary.get('dataset') or '–'} / {summary.get('model') or '–'}"),
        ("rounds", str(len(summary.get("rounds") or []))),
        ("DP", {True: "on", False: "off", None: "–"}[summary.get("dp_enabled")]),
        ("final accuracy (site holdouts)", _pct(final.get("accuracy"))),
        ("final accuracy (pooled test)", _pct(final.get("test_accuracy"))),
    ]
    if summary.get("protection"):  # secagg: robust rules off, and why
        rows.insert(4, ("update protection", str(summary["protection"])))
    dp_mode = summary.get("dp_mode")
    if isinstance(dp_mode, dict):  # distributed DP: the assumption the epsilon rests on
        rows.insert(
            4,
            (
                "DP mode",
                f"{dp_mode.get('mode')} (Skellam shares, assumes at least "
                f"{dp_mode.get('honest_sites')} honest site(s)): {dp_mode.get('trust')}",
            ),
        )
    baseline = summary.get("baseline") or {}
    if summary.get("task") == "regression":
        rows = rows[:4] + [
            ("final MAE / RMSE / R² (site holdouts)", _triple(final, "")),
            ("final MAE / RMSE / R² (pooled test)", _triple(final, "test_")),
        ]
        if baseline.get("test_r2") is not None:
            rows.append(("centralized baseline (pooled test)", _triple(baseline, "test_")))
            if final.get("test_r2") is not None:
                gap = float(final["test_r2"]) - float(baseline["test_r2"])
                rows.append(("federated − centralized R²", f"{gap:+.4f}"))
        return rows
    if baseline.get("test_accuracy") is not None:
        rows.append(("centralized baseline (pooled test)", _pct(baseline["test_accuracy"])))
        if final.get("test_accuracy") is not None:
            gap = 100.0 * (float(final["test_accuracy"]) - float(baseline["test_accuracy"]))
            rows.append(("federated − centralized", f"{gap:+.2f} points"))
    return rows


def _triple(figures: Mapping[str, Any], prefix: str) -> str:
    return " / ".join(_fmt(figures.get(f"{prefix}{k}")) for k in ("mae", "rmse", "r2"))


def residual_rows(final: Mapping[str, Any]) -> tuple[list[str], list[list[str]]]:
    """Header and rows of the summed residual histogram (regression)."""
    hist = final.get("residual_histogram") or {}
    edges = list(hist.get("edges") or [])
    counts = list(hist.get("counts") or [])
    hidden = list(hist.get("suppressed") or [0] * len(counts))
    names = [f"< {edges[0]:g}"] if edges else []
    names += [f"{a:g} to {b:g}" for a, b in itertools.pairwise(edges)]
    names += [f"> {edges[-1]:g}"] if edges else []
    rows = [
        [n, f"{c}+ ({h} suppressed)" if h else str(c)]
        for n, c, h in zip(names, counts, hidden, strict=True)
    ]
    return ["residual (prediction − truth)", "holdout rows"], rows


RESIDUAL_NOTE = (
    "Sums of the counts the sites revealed per residual bin (bins from the contract's target "
    "scale, not from data); n+ (k suppressed): k sites withheld that bin (below their "
    "policy's minimum cell count). Per-example residuals never leave a site."
)


def round_rows(summary: Mapping[str, Any]) -> list[list[str]]:
    """One row per round: round, version, global accuracy/loss, test accuracy, who took part."""
    rows = []
    for r in summary.get("rounds") or []:
        g = r["global"]
        rows.append(
            [
                str(r["round"]),
                _fmt(r.get("version")),
                _pct(g.get("accuracy")),
                _fmt(g.get("loss")),
                _pct(g.get("test_accuracy")),
                ", ".join(r.get("contributors") or []) or "none",
                _reasons(r.get("abstained") or {}),
                _reasons(r.get("rejected") or {}),
                (f"not scored: {r['screening_off']}" if r.get("screening_off") else None)
                or "; ".join((r.get("flagged") or {}).values())
                or "none",
            ]
        )
    return rows


ROUND_HEADER = [
    "round",
    "version",
    "accuracy (holdouts)",
    "loss",
    "accuracy (pooled test)",
    "contributing",
    "abstained (reason)",
    "rejected (reason)",
    "anomalous updates (aggregation.anomaly)",
]
SITE_HEADER = [
    "site",
    "validation",
    "accuracy",
    "loss",
    "AUC",
    "holdout n",
    "ε RDP total",
    "ε PLD total",
]


def _validation_cell(entry: Mapping[str, Any] | None) -> str:
    if not entry:
        return "–"
    if entry.get("passed"):
        rows = entry.get("row_count")
        return "passed" + (f" ({rows} rows)" if rows is not None else "")
    return f"failed: {entry.get('reason') or 'no reason given'}"


def site_rows(summary: Mapping[str, Any]) -> list[list[str]]:
    """One row per site: final-round metrics and total epsilon."""
    rounds = summary.get("rounds") or []
    last = rounds[-1]["sites"] if rounds else {}
    totals = summary.get("epsilon_total") or {}
    checks = summary.get("validation") or {}
    rows = []
    for site in summary.get("sites") or []:
        m = last.get(site, {})
        t = totals.get(site, {})
        rows.append(
            [
                site,
                _validation_cell(checks.get(site)),
                _pct(m.get("accuracy")),
                _fmt(m.get("loss")),
                _fmt(m.get("auc")),
                _fmt(m.get("num_examples")),
                _fmt(t.get("rdp"), 3),
                _fmt(t.get("pld"), 3),
            ]
        )
    return rows


def epsilon_rows(summary: Mapping[str, Any]) -> tuple[list[str], list[list[str]]]:
    """Epsilon spent per round per site as 'RDP / PLD'."""
    sites = list(summary.get("sites") or [])
    rows = []
    for r in summary.get("rounds") or []:
        row = [str(r["round"])]
        for s in sites:
            m = r["sites"].get(s, {})
            row.append(f"{_fmt(m.get('epsilon'), 3)} / {_fmt(m.get('epsilon_pld'), 3)}")
        rows.append(row)
    return ["round", *sites], rows


MEMBERSHIP_HEADER = [
    "site",
    "round",
    "loss-threshold AUC",
    "loss-threshold advantage",
    "logistic AUC",
    "logistic advantage",
    "bound (e^ε − 1 + 2δ)/(e^ε + 1)",
    "ε (disclosure)",
    "above the bound",
]
MEMBERSHIP_NOTE = (
    "Membership-inference audit of each round's global model at each site: attacks guess "
    "whether a row was in the site's training data from the model's loss on it (training rows "
    "vs holdout rows). Only AUC and advantage (max TPR − FPR) leave the site. Any (ε, δ)-DP "
    "training bounds the advantage by (e^ε − 1 + 2δ)/(e^ε + 1), with the ε the site had spent "
    "in this run by that round; a site and round above it is flagged."
)


def membership_rows(summary: Mapping[str, Any]) -> list[list[str]]:
    """One row per site and round that reported a membership-inference audit."""
    found = [
        (site, int(r["round"]), m)
        for r in summary.get("rounds") or []
        for site, m in (r.get("membership") or {}).items()
    ]
    rows = []
    for site, rnd, m in sorted(found, key=lambda x: (x[0], x[1])):
        eps = m.get("epsilon")
        rows.append(
            [
                site,
                str(rnd),
                _fmt(m["loss_threshold"]["auc"], 3),
                _fmt(m["loss_threshold"]["advantage"], 3),
                _fmt(m["logistic"]["auc"], 3),
                _fmt(m["logistic"]["advantage"], 3),
                _fmt(m.get("bound"), 4),
                f"{'∞' if eps is None else _fmt(eps, 3)} ({m.get('disclosure')})",
                "ABOVE" if m.get("above_bound") else "no",
            ]
        )
    return rows


def membership_flags(summary: Mapping[str, Any]) -> str:
    """The sites and rounds above their bound, in one sentence."""
    above = summary.get("membership_above_bound") or []
    if not above:
        return "No site and round above its bound."
    return "Above the bound: " + "; ".join(
        f"{a['site']} round {a['round']} (advantage {_fmt(a['advantage'], 3)} above "
        f"{_fmt(a['bound'], 4)})"
        for a in above
    )


def _html_table(header: list[str], rows: list[list[str]]) -> str:
    """Every cell is text (escaped): reasons, site ids and labels come from the sites."""
    head = "".join(f"<th>{html_text(h)}</th>" for h in header)
    body = "".join(
        "<tr>" + "".join(f"<td>{html_text(c)}</td>" for c in row) + "</tr>" for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def confusion_rows(final: Mapping[str, Any]) -> tuple[list[str], list[list[str]]]:
    """Header and rows of the summed confusion matrix; `n+ (k suppressed)` marks lower bounds."""
    labels = [str(x) for x in final.get("labels") or []]
    matrix = final.get("confusion_matrix") or []
    hidden = final.get("confusion_suppressed") or [[0] * len(r) for r in matrix]
    rows = []
    for i, row in enumerate(matrix):
        cells = []
        for j, count in enumerate(row):
            k = hidden[i][j] if i < len(hidden) and j < len(hidden[i]) else 0
            cells.append(f"{count}+ ({k} suppressed)" if k else str(count))
        rows.append([labels[i] if i < len(labels) else str(i), *cells])
    return ["true \\ predicted", *labels], rows


CONFUSION_NOTE = (
    "Rows: true label, columns: predicted; sums of the counts the sites revealed. "
    "n+ (k suppressed): k sites withheld that cell (below their policy's minimum cell count), "
    "so n is a lower bound."
)


def _confusion_html(final: Mapping[str, Any]) -> str:
    if not final.get("confusion_matrix"):
        return "<p>No confusion matrix.</p>"
    header, rows = confusion_rows(final)
    return _html_table(header, rows) + f"<p class='note'>{html_text(CONFUSION_NOTE)}</p>"


_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;margin:2em auto;max-width:1100px;color:#222}
h1{font-size:1.6em}h2{font-size:1.25em;margin-top:1.6em;border-bottom:1px solid #ddd}
table{border-collapse:collapse;margin:.6em 0;font-size:.9em}
td,th{border:1px solid #ccc;padding:.3em .6em;text-align:left;vertical-align:top}
th{background:#f4f4f4}img{max-width:100%}.note{color:#666;font-size:.85em}
"""


def render_html(summary: Mapping[str, Any]) -> str:
    """A self-contained HTML page (inline CSS, inline PNG plots) for a run summary."""
    parts = [
        "<!DOCTYPE html><html><head><meta charset='utf-8'>",
        f"<title>fedpipe run {html_text(summary.get('run_id') or '')}</title>",
        f"<style>{_CSS}</style></head><body>",
        "<h1>fedpipe federated training report</h1>",
        _html_table(["", ""], [list(r) for r in headline(summary)]),
    ]
    for title, uri in (
        ("Accuracy per round", plots.accuracy_plot(summary)),
        ("Privacy budget spent", plots.epsilon_plot(summary)),
        ("Per-site metrics", plots.site_metrics_plot(summary)),
    ):
        if uri:
            parts.append(f"<h2>{html_text(title)}</h2><img alt='{html_text(title)}' src='{uri}'>")
    parts.append("<h2>Rounds</h2>")
    parts.append(_html_table(ROUND_HEADER, round_rows(summary)))
    parts.append("<h2>Sites (final round)</h2>")
    parts.append(_html_table(SITE_HEADER, site_rows(summary)))
    header, rows = epsilon_rows(summary)
    parts.append("<h2>Epsilon per round (RDP / PLD)</h2>")
    parts.append(_html_table(header, rows))
    final = summary.get("final") or {}
    if summary.get("task") == "regression":
        parts.append("<h2>Residuals (final global model, all site holdouts)</h2>")
        uri = plots.residual_plot(final)
        if uri:
            parts.append(f"<img alt='residuals' src='{uri}'>")
        header, rows = residual_rows(final)
        parts.append(_html_table(header, rows))
        parts.append(f"<p class='note'>{html_text(RESIDUAL_NOTE)}</p>")
    else:
        parts.append("<h2>Confusion matrix (final global model, all site holdouts)</h2>")
        parts.append(_confusion_html(final))
    membership = membership_rows(summary)
    if membership:
        parts.append("<h2>Membership-inference audit per round</h2>")
        parts.append(f"<p>{html_text(MEMBERSHIP_NOTE)}</p>")
        uri = plots.membership_plot(summary)
        if uri:
            parts.append(f"<img alt='membership advantage per round' src='{uri}'>")
        parts.append(f"<p><strong>{html_text(membership_flags(summary))}</strong></p>")
        parts.append(_html_table(MEMBERSHIP_HEADER, membership))
    baseline = summary.get("baseline")
    if baseline:
        parts.append("<h2>Centralized baseline</h2>")
        parts.append(
            _html_table(["", ""], [[str(k), _fmt(v)] for k, v in sorted(baseline.items())])
        )
    parts.append("</body></html>")
    return "\n".join(parts)


def _md_table(header: list[str], rows: list[list[str]]) -> str:
    """Every cell is inert text (`markdown_text`): no raw HTML, links or markup survive."""
    esc = markdown_text
    lines = ["| " + " | ".join(esc(h) for h in header) + " |"]
    lines.append("|" + "---|" * len(header))
    lines.extend("| " + " | ".join(esc(c) for c in row) + " |" for row in rows)
    return "\n".join(lines)


def render_markdown(summary: Mapping[str, Any]) -> str:
    """The report as Markdown (tables only, no images) for the KFP UI."""
    parts = ["# fedpipe federated training report", ""]
    parts.append(_md_table(["", ""], [list(r) for r in headline(summary)]))
    parts += ["", "## Rounds", "", _md_table(ROUND_HEADER, round_rows(summary))]
    parts += ["", "## Sites (final round)", "", _md_table(SITE_HEADER, site_rows(summary))]
    header, rows = epsilon_rows(summary)
    parts += ["", "## Epsilon per round (RDP / PLD)", "", _md_table(header, rows), ""]
    final = summary.get("final") or {}
    if summary.get("task") == "regression" and final.get("residual_histogram"):
        r_header, r_rows = residual_rows(final)
        parts += ["## Residuals (final round)", "", _md_table(r_header, r_rows), ""]
        parts += [markdown_text(RESIDUAL_NOTE), ""]
    if final.get("confusion_matrix"):
        c_header, c_rows = confusion_rows(final)
        parts += ["## Confusion matrix (final round)", "", _md_table(c_header, c_rows), ""]
        parts += [markdown_text(CONFUSION_NOTE), ""]
    membership = membership_rows(summary)
    if membership:
        parts += ["## Membership-inference audit per round", ""]
        parts += [markdown_text(MEMBERSHIP_NOTE), "", markdown_text(membership_flags(summary))]
        parts += ["", _md_table(MEMBERSHIP_HEADER, membership), ""]
    return "\n".join(parts)
