"""Residency report rendering: hand-counted summary, stable bytes, every crossing edge listed."""

from __future__ import annotations

import json
import re

import pytest

from components.domain.canonical import policy_digest
from pipelines.config.loader import load_federation
from pipelines.residency import FlowEdge, check_flows, render_report_json, render_report_markdown
from tests.support.paths import REPO

B, C = "hospital-berlin", "coordinator"
EDGES = [
    FlowEdge("export-b-r1", "update", "dp_update", B, "aggregate-r1", C),  # crossing, allowed
    FlowEdge("train-b-r1", "local_model", "local_model", B, "export-b-r1", B),  # local
    FlowEdge("validate-b", "summary", "validation_summary", B, "train-b-r1", B),  # local
    FlowEdge("train-b-r1", "local_model", "local_model", B, "aggregate-r1", C),  # crossing, denied
    FlowEdge("validate-p", "summary", None, "hospital-paris", "train-p-r1", "hospital-paris"),
]


@pytest.fixture(scope="module")
def decisions_and_fed():
    fed = load_federation(REPO / "sites", REPO / "policies")
    return check_flows(EDGES, fed), fed


def test_json_report_counts_and_rows(decisions_and_fed):
    decisions, fed = decisions_and_fed
    text = render_report_json(decisions, "v-abc", fed, extra={"rounds": 1})
    data = json.loads(text)
    assert data["pipeline_version"] == "v-abc"
    assert data["summary"] == {
        "edges": 5,
        "crossing": 2,
        "crossing_allowed": 1,
        "denied": 2,
        "local": 2,
    }
    assert [(r["task"], r["allowed"], r["rule"]) for r in data["crossing"]] == [
        ("export-b-r1", True, "eu-health rules.dp_update[0]"),
        ("train-b-r1", False, "eu-health rules.local_model"),
    ]
    assert [r["task"] for r in data["denied"]] == ["train-b-r1", "validate-p"]
    assert data["local"] == [
        {"placement": B, "class": "local_model", "edges": 1},
        {"placement": B, "class": "validation_summary", "edges": 1},
    ]
    assert data["placements"][B]["policy_digest"] == policy_digest(fed.policies["eu-health"])
    assert data["placements"][C]["jurisdiction"] == "NL"
    assert data["extra"] == {"rounds": 1}
    assert text == render_report_json(decisions, "v-abc", fed, extra={"rounds": 1})
    assert text.endswith("}\n")


def test_markdown_lists_every_crossing_edge_with_its_rule(decisions_and_fed):
    decisions, fed = decisions_and_fed
    md = render_report_markdown(decisions, "v-abc", fed)
    assert md.startswith("# Residency report\n\nPipeline version: `v-abc`\n")
    assert (
        "5 artifact edges: 2 cross a placement (1 allowed by a rule), 2 stay on their placement, 2 denied."
        in md
    )
    assert (
        "| export-b-r1 | update | dp_update | hospital-berlin | coordinator | aggregate-r1 | allowed "
        "| eu-health rules.dp_update\\[0\\] | roles=coordinator, jurisdictions=EU |"
    ) in md
    assert (
        "| train-b-r1 | local_model | local_model | hospital-berlin | coordinator | aggregate-r1 | **DENIED** |"
        in md
    )
    assert "## Denied (2)" in md and "declares no artifact class" in md
    assert md == render_report_markdown(decisions, "v-abc", fed)


def test_all_allowed_report_without_federation():
    fed = load_federation(REPO / "sites", REPO / "policies")
    decisions = check_flows(EDGES[:3], fed)
    md = render_report_markdown(decisions, "v1")
    assert "## Denied (0)" in md and "None: every crossing edge is allowed" in md
    assert "## Placements" not in md
    assert "placements" not in json.loads(render_report_json(decisions, "v1"))


def test_site_supplied_text_is_inert_markdown(decisions_and_fed):
    """Issue #11 item 8: a region (free text in a site spec) carrying HTML or a link must not
    reach the rendered report as markup."""
    import dataclasses

    decisions, fed = decisions_and_fed
    berlin = fed.sites["hospital-berlin"]
    hostile = berlin.copy(
        update={"region": "<img src=x onerror=alert(1)> [x](javascript:alert(1))"}
    )
    fed2 = dataclasses.replace(fed, sites={**fed.sites, "hospital-berlin": hostile})
    md = render_report_markdown(decisions, "v-abc", fed2, {"image": "`x` <b>y</b>"})
    assert "<img" not in md and "<b>" not in md
    assert re.search(r"(?<!\\)\]\(", md) is None  # no link: every "](" is escaped
    assert "&lt;img src=x onerror=alert(1)&gt; \\[x\\](javascript:alert(1))" in md
    assert "* image: \\`x\\` &lt;b&gt;y&lt;/b&gt;" in md
