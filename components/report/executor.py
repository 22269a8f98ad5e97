"""Report executor: read round reports and evaluations, write HTML, Markdown and summary.json.

Signature per components/CONTRACT.md ("How component.py calls run"): the component wrapper
passes plain paths and logs the returned scalars and confusion matrix on its `dsl.Metrics` /
`dsl.ClassificationMetrics` outputs.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from components.common.artifact_files import METRICS_FILE, ROUND_FILE, SUMMARY_FILE, write_json
from components.common.config_digest import check_config
from components.domain.canonical import sha256_hex
from components.domain.models import Site
from components.domain.run_id import effective_run_id
from components.report.render import render_html, render_markdown
from components.report.summary import build_summary, kfp_metrics


def read_json_artifact(path: str | Path, filename: str) -> dict[str, Any]:
    """The JSON document `filename` inside artifact folder `path` (or `path` itself if a file)."""
    p = Path(path)
    target = p / filename if p.is_dir() else p
    try:
        return json.loads(target.read_text())
    except FileNotFoundError as exc:
        raise FileNotFoundError(f"report input {target} does not exist") from exc
    except json.JSONDecodeError as exc:
        raise ValueError(f"report input {target} is not valid JSON: {exc}") from exc


def write_report(summary: Mapping[str, Any], html_path: str | Path, md_path: str | Path) -> None:
    """Render `summary` to an HTML file and a Markdown file (parent folders created)."""
    for path, text in ((html_path, render_html(summary)), (md_path, render_markdown(summary))):
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(text, encoding="utf-8")


def _dataset_of(sites: Mapping[str, Any]) -> str:
    names = sorted(
        {str((s.get("data") or {}).get("contract")) for s in sites.values() if s.get("data")}
    )
    return ",".join(names)


def kfp_confusion(summary: Mapping[str, Any]) -> dict[str, Any] | None:
    """Confusion matrix for dsl.ClassificationMetrics: suppressed (null) cells given as 0."""
    final = summary.get("final") or {}
    matrix = final.get("confusion_matrix") or []
    if not matrix:
        return None
    return {
        "categories": [str(x) for x in final.get("labels") or []],
        "matrix": [[int(c or 0) for c in row] for row in matrix],
    }


def run(
    *,
    round_reports: Mapping[int, str],
    evaluations: Mapping[int, Mapping[str, str]],
    html: str,
    markdown: str,
    summary: str,
    validations: Mapping[str, str] | None = None,
    sites_json: str = "{}",
    run_id: str = "",
    kfp_job_id: str = "",
    model_name: str = "",
    dp_enabled: bool | None = None,
    baseline_json: str = "",
    coordinator_json: str = "",
    config_digest: str = "",
) -> dict[str, Any]:
    """Build the run summary and write the reports.

    round_reports: {round: `round_report` folder (round.json)}.
    evaluations: {round: {site_id: `evaluation` folder (metrics.json)}}.
    validations: {site_id: `summary` folder of validate (summary.json)}, optional.
    html / markdown: files to write (dsl.HTML / dsl.Markdown paths).
    summary: folder to create; `summary.json` is written inside.
    baseline_json: optional centralized baseline as JSON ({"test_accuracy": ...}).
    coordinator_json (checked against `config_digest`): when its site spec names a signing
    key, the sha256 of summary.json, the HTML and the Markdown go to the coordinator's audit
    chain (`components.audit.run_events`), then a signed checkpoint.
    Returns {"metrics": {name: float}, "confusion_matrix": {"categories", "matrix"} | None}.
    """
    coordinator = None
    if coordinator_json:
        check_config(config_digest, task="report", coordinator_json=coordinator_json)
        coordinator = Site.parse_raw(coordinator_json)
    reports = [read_json_artifact(p, ROUND_FILE) for _, p in sorted(round_reports.items())]
    evals = [
        read_json_artifact(path, METRICS_FILE)
        for _, per_site in sorted(evaluations.items())
        for _, path in sorted(per_site.items())
    ]
    sites = json.loads(sites_json or "{}")
    checks = {
        site: read_json_artifact(path, SUMMARY_FILE)
        for site, path in sorted((validations or {}).items())
    }
    doc = build_summary(
        reports,
        evals,
        run_id=effective_run_id(run_id, kfp_job_id, "report"),
        dataset=_dataset_of(sites),
        model_name=model_name,
        sites=[s for s, spec in sites.items() if spec.get("role", "site") == "site"],
        baseline=json.loads(baseline_json) if baseline_json else None,
        dp_enabled=dp_enabled,
        validations=checks,
    )
    write_report(doc, html, markdown)
    summary_path = write_json(summary, SUMMARY_FILE, doc)
    _audit_report(
        coordinator, doc, {"summary.json": summary_path, "html": html, "markdown": markdown}
    )
    return {"metrics": kfp_metrics(doc), "confusion_matrix": kfp_confusion(doc)}


def _audit_report(
    coordinator: Site | None, doc: Mapping[str, Any], files: Mapping[str, str | Path]
) -> None:
    """Append the report record (each written file's sha256) to the coordinator's chain and
    sign a checkpoint, when the coordinator's site spec names a signing key."""
    from components.audit.run_events import REPORT, coordinator_task_log, report_body

    if coordinator is None:
        return
    log = coordinator_task_log(coordinator, str(doc["run_id"]))
    if log is None:
        return
    rounds = doc.get("rounds") or []
    digests = {name: sha256_hex(Path(path).read_bytes()) for name, path in files.items()}
    final = rounds[-1].get("version") if rounds else None
    log.append(REPORT, report_body(rounds=len(rounds), final_version=final, digests=digests))
    log.checkpoint()
