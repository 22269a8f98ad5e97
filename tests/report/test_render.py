"""HTML/Markdown rendering and the executor's file outputs, on fixture data."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path

from components.report import executor
from components.report.render import render_html, render_markdown
from components.report.summary import build_summary
from tests.support.report_fixtures import evaluations, round_reports


def _summary() -> dict:
    return build_summary(
        round_reports(),
        evaluations(),
        run_id="run-<x>",
        test_accuracy={1: {"accuracy": 0.9}, 2: {"accuracy": 0.96}},
        baseline={"test_accuracy": 0.97},
        validations={"clinic-boston": {"passed": False, "reason": "column radius missing"}},
    )


def test_html_is_self_contained_with_three_png_plots() -> None:
    page = render_html(_summary())
    assert page.startswith("<!DOCTYPE html>")
    images = re.findall(r"src='data:image/png;base64,([A-Za-z0-9+/=]+)'", page)
    assert len(images) == 3
    for img in images:
        assert base64.b64decode(img).startswith(b"\x89PNG")
    assert "http://" not in page and "https://" not in page  # nothing loaded from outside
    assert "run-&lt;x&gt;" in page  # escaped
    assert "lifetime budget would be exceeded" in page
    assert "signature does not verify" in page
    assert "failed: column radius missing" in page
    assert "96.00%" in page and "97.00%" in page and "-1.00 points" in page


def test_markdown_has_round_rows_and_reasons() -> None:
    md = render_markdown(_summary())
    assert "| 2 | 2 | 94.00% | 0.2200 | 96.00% | hospital-berlin |" in md
    assert "clinic-boston: lifetime budget would be exceeded" in md
    assert "| 1 | 1.000 / 0.800 | 1.500 / 1.250 | 2.000 / 1.500 |" in md
    assert "| 0 | 47 | 2+ (2 suppressed) |" in md


def test_no_plots_without_data() -> None:
    page = render_html(build_summary([], []))
    assert "data:image/png" not in page


def _write(folder: Path, name: str, doc: dict) -> str:
    folder.mkdir(parents=True)
    (folder / name).write_text(json.dumps(doc))
    return str(folder)


def test_executor_writes_files_and_returns_kfp_values(tmp_path: Path) -> None:
    reports = {
        r["round"]: _write(tmp_path / f"rr{r['round']}", "round.json", r) for r in round_reports()
    }
    evals: dict[int, dict[str, str]] = {}
    for e in evaluations():
        folder = tmp_path / f"ev-{e['round']}-{e['site_id']}"
        evals.setdefault(e["round"], {})[e["site_id"]] = _write(folder, "metrics.json", e)
    validation = {
        "clinic-boston": _write(
            tmp_path / "val",
            "summary.json",
            {"site_id": "clinic-boston", "passed": True, "row_count": 120},
        )
    }
    sites = {"clinic-boston": {"role": "site", "data": {"contract": "breast_cancer"}}}
    out = executor.run(
        round_reports=reports,
        evaluations=evals,
        validations=validation,
        sites_json=json.dumps(sites),
        run_id="",
        kfp_job_id="job-1",
        html=str(tmp_path / "out" / "report.html"),
        markdown=str(tmp_path / "out" / "report.md"),
        summary=str(tmp_path / "summary"),
    )
    doc = json.loads((tmp_path / "summary" / "summary.json").read_text())
    assert doc["run_id"] == "job-1" and doc["dataset"] == "breast_cancer"
    assert doc["validation"]["clinic-boston"]["row_count"] == 120
    assert (tmp_path / "out" / "report.html").read_text().count("data:image/png") == 3
    assert "fedpipe federated training report" in (tmp_path / "out" / "report.md").read_text()
    assert out["confusion_matrix"] == {"categories": ["0", "1"], "matrix": [[47, 2], [1, 47]]}
    assert out["metrics"]["final_accuracy"] == doc["final"]["accuracy"]


HOSTILE = "<img src=x onerror=alert(1)> [click](javascript:alert(1)) | `code` *bold*"


def _hostile_summary() -> dict:
    """Site-supplied text everywhere a report shows it: abstain, rejection and validation
    reasons, an anomaly flag and a label."""
    reports = round_reports()
    reports[0] = {
        **reports[0],
        "abstained": {"clinic-boston": HOSTILE},
        "rejected": {"hospital-paris": HOSTILE},
        "anomaly": {"flagged": {"hospital-berlin": HOSTILE}},
    }
    return build_summary(
        reports,
        evaluations(),
        run_id="run-<script>alert(1)</script>",
        validations={"clinic-boston": {"passed": False, "reason": HOSTILE}},
    )


def test_markdown_keeps_no_raw_html_or_links_from_sites() -> None:
    """Issue #11 item 8: report.md (and the KFP UI Markdown) kept `<img … onerror=…>`."""
    md = render_markdown(_hostile_summary())
    assert "<img" not in md and "<script" not in md
    assert re.search(r"(?<!\\)\]\(", md) is None  # every "](" escaped: no link, no image
    assert "&lt;img src=x onerror=alert(1)&gt; \\[click\\](javascript:alert(1)) \\| " in md
    assert "\\`code\\` \\*bold\\*" in md
    assert md.count("&lt;img") >= 4  # abstained, rejected, flagged, validation


def test_html_escapes_everything_from_sites() -> None:
    page = render_html(_hostile_summary())
    assert "<img src=x" not in page and "<script>" not in page
    assert "&lt;img src=x onerror=alert(1)&gt;" in page
    assert "run-&lt;script&gt;alert(1)&lt;/script&gt;" in page


def _audit(advantage: float, bound: float, eps: float) -> dict:
    return {
        "loss_threshold": {"auc": 0.81, "advantage": advantage},
        "logistic": {"auc": 0.8, "advantage": advantage - 0.05},
        "bound": bound,
        "epsilon": eps,
        "delta": 1e-5,
        "above_bound": advantage > bound,
        "non_members": 30,
        "disclosure": "exact",
    }


def test_membership_audit_of_every_round_per_site_flags_each_site_and_round_above_its_bound():
    """Round 1 below its bound, round 2 above (the bound grows with ε, the advantage more)."""
    evs = evaluations()
    audits = {1: _audit(0.1, 0.2, 0.4), 2: _audit(0.5, 0.3, 0.6)}
    for ev in evs:
        if ev["site_id"] == "hospital-berlin":
            ev["membership"] = audits[ev["round"]]
    summary = build_summary(round_reports(), evs)
    md = render_markdown(summary)
    assert "## Membership-inference audit per round" in md
    assert (
        "| hospital-berlin | 1 | 0.810 | 0.100 | 0.800 | 0.050 | 0.2000 | 0.400 (exact) | no |"
        in md
    )
    assert (
        "| hospital-berlin | 2 | 0.810 | 0.500 | 0.800 | 0.450 | 0.3000 | 0.600 (exact) | ABOVE |"
        in md
    )
    assert "Above the bound: hospital-berlin round 2 (advantage 0.500 above 0.3000)" in md
    page = render_html(summary)
    assert "Membership-inference audit per round" in page
    assert "<img alt='membership advantage per round' src='data:image/png;base64," in page
    assert "Membership-inference audit" not in render_markdown(
        build_summary(round_reports(), evaluations())
    )


def test_the_membership_plot_draws_advantage_and_bound_per_round() -> None:
    from components.report import plots

    evs = evaluations()
    for ev in evs:
        if ev["site_id"] == "clinic-boston":
            ev["membership"] = _audit(0.1 * ev["round"], 0.3, 1.0)
    uri = plots.membership_plot(build_summary(round_reports(), evs))
    assert uri is not None and uri.startswith("data:image/png;base64,")
    assert plots.membership_plot(build_summary(round_reports(), evaluations())) is None
