"""`report` (coordinator, fan-in): KFP UI artifacts from every round's reports and metrics.

Generated signature (`components/common/fanin.py`): `validation_<i>` per site, `round_report_<r>` per
round, `evaluation_<r>_<i>` per round and site (`i` 1-based in the order of `site_ids`). The
executor gets dicts and returns the figures this wrapper logs to Metrics/ClassificationMetrics
(components/CONTRACT.md).
"""

import json
from collections.abc import Sequence

from components.common.image import FEDPIPE_IMAGE
from components.domain.artifact_classes import ArtifactClass

OUTPUT_CLASSES = {
    "html": ArtifactClass.METRICS,
    "markdown": ArtifactClass.METRICS,
    "metrics": ArtifactClass.METRICS,
    "classification_metrics": ArtifactClass.METRICS,
    "summary": ArtifactClass.METRICS,
}

PARAMETERS: tuple[tuple[str, str], ...] = (
    ("sites_json", "str"),
    ("coordinator_json", "str"),
    ("config_digest", "str"),
    ("run_id", "str"),
    ("kfp_job_id", "str"),
    ("model_name", "str"),
    ("dp_enabled", "bool"),
)

_LOG_LINES = (
    'for name, value in sorted(result["metrics"].items()):',
    "    metrics.log_metric(name, value)",
    'matrix = result.get("confusion_matrix")',
    "if matrix:",
    '    classification_metrics.log_confusion_matrix(matrix["categories"], matrix["matrix"])',
)


def validation_input(site_index: int) -> str:
    """Name of the generated validation input of the `site_index`-th site (1-based)."""
    return f"validation_{site_index}"


def round_report_input(round_index: int) -> str:
    """Name of the generated round-report input of round `round_index` (1-based)."""
    return f"round_report_{round_index}"


def evaluation_input(round_index: int, site_index: int) -> str:
    """Name of the generated evaluation input of (round, site), both 1-based."""
    return f"evaluation_{round_index}_{site_index}"


def build(site_ids: Sequence[str], rounds: int):
    """The report component for `site_ids` × `rounds`; its executor regenerates the function
    in the image (`function(site_ids, rounds)`) instead of carrying the generated source."""
    from components.common.fanin import fanin_component

    sites = json.dumps(list(site_ids))
    program = f"from {__name__} import function\nreport = function({sites}, {int(rounds)})\n"
    return fanin_component(
        **_generated(site_ids, rounds),
        base_image=FEDPIPE_IMAGE,
        output_classes=OUTPUT_CLASSES,
        program=program,
    )


def function(site_ids: Sequence[str], rounds: int):
    """The generated component function for `site_ids` × `rounds` (what `build` declares)."""
    from components.common.fanin import function_source, load_function

    return load_function("report", function_source(**_generated(site_ids, rounds)))


def _generated(site_ids: Sequence[str], rounds: int) -> dict:
    """name, params, docstring and body of the generated function."""
    from components.common.fanin import Param, call_lines, dict_literal

    if not site_ids or rounds < 1:
        raise ValueError("report: needs at least one site and one round")
    sites = list(enumerate(site_ids, start=1))
    rounds_range = range(1, rounds + 1)
    params = [Param(n, a) for n, a in PARAMETERS]
    params += [Param(validation_input(i), "Input[Artifact]") for i, _ in sites]
    params += [Param(round_report_input(r), "Input[Artifact]") for r in rounds_range]
    params += [
        Param(evaluation_input(r, i), "Input[Artifact]") for r in rounds_range for i, _ in sites
    ]
    params += [
        Param("html", "Output[HTML]"),
        Param("markdown", "Output[Markdown]"),
        Param("metrics", "Output[Metrics]"),
        Param("classification_metrics", "Output[ClassificationMetrics]"),
        Param("summary", "Output[Artifact]"),
    ]
    validations = {site: f"{validation_input(i)}.path" for i, site in sites}
    round_reports = {r: f"{round_report_input(r)}.path" for r in rounds_range}
    evaluations = {
        r: dict_literal({site: f"{evaluation_input(r, i)}.path" for i, site in sites})
        for r in rounds_range
    }
    kwargs = [(n, n) for n, _ in PARAMETERS]
    kwargs += [
        ("validations", dict_literal(validations)),
        ("round_reports", dict_literal(round_reports)),
        ("evaluations", dict_literal(evaluations)),
        ("html", "html.path"),
        ("markdown", "markdown.path"),
        ("summary", "summary.path"),
    ]
    body = [
        "from components.report.executor import run",
        "",
        *call_lines("run", kwargs, result="result"),
        *_LOG_LINES,
    ]
    return {
        "name": "report",
        "params": params,
        "docstring": "Render the run's KFP UI report from round reports and per-site metrics.",
        "body": body,
    }
