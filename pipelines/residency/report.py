"""The residency report that ships next to the compiled YAML (JSON and Markdown; pure, stable).

Both renderings list every crossing edge with the rule that allowed it (or why it was denied),
every denied edge, and a count of the edges that stay on one placement. Same inputs give the
same text byte for byte.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

from components.domain.canonical import policy_digest
from components.domain.federation import Federation
from components.domain.markup import markdown_text
from pipelines.residency.checker import ResidencyDecision

REPORT_FORMAT = "fedpipe.dev/residency-report/v1"


def _edge_row(d: ResidencyDecision) -> dict[str, Any]:
    e = d.edge
    return {
        "task": e.task,
        "artifact": e.artifact,
        "class": e.artifact_class,
        "source": e.source,
        "destination": e.dest,
        "dest_task": e.dest_task,
        "allowed": d.allowed,
        "rule": d.rule,
        "rule_text": d.rule_text,
        "reason": d.reason,
    }


def _placements(federation: Federation) -> dict[str, dict[str, str]]:
    digests = {pid: policy_digest(p) for pid, p in federation.policies.items()}
    return {
        sid: {
            "role": s.role,
            "deployment": s.deployment,
            "provider": s.provider,
            "region": s.region,
            "jurisdiction": s.jurisdiction,
            "policy": s.policy,
            "policy_digest": digests[s.policy],
        }
        for sid, s in federation.all_sites.items()
    }


def report_data(
    decisions: Sequence[ResidencyDecision],
    version: str,
    federation: Federation | None = None,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The report as plain data (what `render_report_json` serializes)."""
    crossing = [d for d in decisions if d.crossing]
    denied = [d for d in decisions if not d.allowed]
    local = Counter(
        (d.edge.source, d.edge.artifact_class or f"<{d.edge.kind}>")
        for d in decisions
        if not d.crossing and d.allowed
    )
    data: dict[str, Any] = {
        "format": REPORT_FORMAT,
        "pipeline_version": version,
        "summary": {
            "edges": len(decisions),
            "crossing": len(crossing),
            "crossing_allowed": sum(d.allowed for d in crossing),
            "denied": len(denied),
            "local": sum(local.values()),
        },
        "crossing": [_edge_row(d) for d in crossing],
        "denied": [_edge_row(d) for d in denied],
        "local": [{"placement": p, "class": c, "edges": n} for (p, c), n in sorted(local.items())],
    }
    if federation is not None:
        data["placements"] = _placements(federation)
        data["unsafe_overrides"] = {
            pid: {
                "allow_leaving_site": list(p.unsafe_override.allow_leaving_site),
                "reason": p.unsafe_override.reason,
                "sites": sorted(s.id for s in federation.all_sites.values() if s.policy == pid),
            }
            for pid, p in federation.policies.items()
            if p.unsafe_override is not None
        }
    if extra:
        data["extra"] = dict(extra)
    return data


def render_report_json(
    decisions: Sequence[ResidencyDecision],
    version: str,
    federation: Federation | None = None,
    extra: Mapping[str, Any] | None = None,
) -> str:
    """Indented JSON with sorted keys and a final newline. `extra`: JSON-able additions."""
    data = report_data(decisions, version, federation, extra)
    return json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


class _Markup(str):
    """Markdown this module wrote itself (not escaped again)."""


def _cell(value: object) -> str:
    """Site- and policy-supplied text (regions, rule descriptions, reasons) as inert text."""
    return str(value) if isinstance(value, _Markup) else markdown_text(value)


def _table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> list[str]:
    lines = ["| " + " | ".join(_cell(h) for h in header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return lines


def render_report_markdown(
    decisions: Sequence[ResidencyDecision],
    version: str,
    federation: Federation | None = None,
    extra: Mapping[str, Any] | None = None,
) -> str:
    """The same report as Markdown (readable in a PR or the KFP UI)."""
    data = report_data(decisions, version, federation, extra)
    s = data["summary"]
    out = [
        "# Residency report",
        "",
        f"Pipeline version: `{version}`",
        "",
        f"{s['edges']} artifact edges: {s['crossing']} cross a placement "
        f"({s['crossing_allowed']} allowed by a rule), {s['local']} stay on their placement, "
        f"{s['denied']} denied.",
        "",
    ]
    if extra:
        out += [*(f"* {_cell(k)}: {_cell(v)}" for k, v in sorted(extra.items())), ""]
    overrides = data.get("unsafe_overrides") or {}
    if overrides:
        out += [f"## UNSAFE overrides ({len(overrides)})", ""]
        out += [
            _Markup(
                f"* **policy {_cell(pid)} lets {_cell(' and '.join(o['allow_leaving_site']))} "
                f"leave the site** (sites {_cell(', '.join(o['sites']) or 'none')}), against the "
                f"design's invariant; reason given: {_cell(o['reason'])}"
            )
            for pid, o in overrides.items()
        ]
        out.append("")
    if "placements" in data:
        out += ["## Placements", ""]
        out += _table(
            ["placement", "role", "provider", "region", "jurisdiction", "policy", "policy digest"],
            [
                [sid, p["role"], p["provider"], p["region"], p["jurisdiction"], p["policy"],
                 _Markup(f"`{markdown_text(p['policy_digest'][:16])}`")]
                for sid, p in data["placements"].items()
            ],
        )  # fmt: skip
        out.append("")
    out += [f"## Crossing edges ({len(data['crossing'])})", ""]
    if data["crossing"]:
        out += _table(
            ["task", "artifact", "class", "from", "to", "consumer", "verdict", "rule", "why"],
            [
                [r["task"], r["artifact"], r["class"], r["source"], r["destination"],
                 r["dest_task"], "allowed" if r["allowed"] else _Markup("**DENIED**"),
                 r["rule"] or "-", r["rule_text"] or r["reason"]]
                for r in data["crossing"]
            ],
        )  # fmt: skip
    else:
        out.append("None.")
    out.append("")
    out += [f"## Denied ({len(data['denied'])})", ""]
    if data["denied"]:
        out += [
            f"* task {_cell(r['task'])} artifact {_cell(r['artifact'])} (class "
            f"{_cell(r['class'] or '<none>')}) from {_cell(r['source'])} to "
            f"{_cell(r['destination'])} (task {_cell(r['dest_task'])}), "
            f"rule {_cell(r['rule'] or '-')}: {_cell(r['reason'])}"
            for r in data["denied"]
        ]
    else:
        out.append("None: every crossing edge is allowed by a rule of its source site's policy.")
    out += ["", "## Edges within one placement", ""]
    if data["local"]:
        out += _table(
            ["placement", "class", "edges"],
            [[r["placement"], r["class"], r["edges"]] for r in data["local"]],
        )
    else:
        out.append("None.")
    return "\n".join(out) + "\n"
