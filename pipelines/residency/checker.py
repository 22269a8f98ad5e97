"""The residency checker: every artifact edge that crosses a placement is checked (pure).

Deny by default: an edge is a violation when its artifact has no (or an unknown) class, when
a parameter (plain value, no class) would cross a placement, when
its source or destination placement is unknown, when the source site has no policy, or when no
rule of the source site's policy lets that class reach the destination. Edges that stay on one
placement are allowed without a rule (they need a valid class all the same).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from components.domain.federation import Federation
from components.domain.models import ARTIFACT_CLASSES, Policy, Site


@dataclass(frozen=True)
class FlowEdge:
    """One artifact passed from a producing task to a consuming task in the compiled DAG.

    task: name of the producing task (e.g. "export-hospital-berlin-r1").
    artifact: name of the producing task's output (e.g. "update").
    artifact_class: the output's residency class, one of `ARTIFACT_CLASSES`
        ("raw_data", "local_model", "validation_summary", "dp_update", "global_model",
        "metrics"), or None when the component declares none (always a violation).
    source: placement of the producing task = a site id from `sites/`; coordinator tasks use
        the coordinator's site id (`federation.coordinator.id`).
    dest_task: name of the consuming task.
    dest: placement of the consuming task (site id or the coordinator's site id).

    kind: "artifact", or "parameter" for a plain-value output (no class; it may never cross a
        placement, e.g. validate's `admission` to the same site's train).

    One edge per (producer output, consumer task); an output consumed by three tasks is three
    edges. The edge crosses a placement when `source != dest`.
    """

    task: str
    artifact: str
    artifact_class: str | None
    source: str
    dest_task: str
    dest: str
    kind: str = "artifact"

    @property
    def crosses(self) -> bool:
        """True when the artifact leaves its source placement."""
        return self.source != self.dest


@dataclass(frozen=True)
class ResidencyDecision:
    """The verdict on one edge.

    rule: for an allowed crossing, the rule that allowed it ("eu-health rules.dp_update[0]");
        for a denial, the rule list that was searched ("eu-health rules.dp_update"), or None
        when no policy rule was involved (same placement, missing class, unknown placement).
    rule_text: the rule in words ("roles=coordinator, jurisdictions=EU"), "" if none.
    reason: one readable sentence: why allowed or why denied.
    """

    edge: FlowEdge
    allowed: bool
    rule: str | None
    rule_text: str
    reason: str

    @property
    def crossing(self) -> bool:
        return self.edge.crosses

    def line(self) -> str:
        """One line naming task, artifact, class, source site, destination and rule."""
        e = self.edge
        verdict = "allowed" if self.allowed else "DENIED"
        return (
            f"{verdict}: task {e.task} artifact {e.artifact} "
            f"(class {e.artifact_class or '<none>'}) from site {e.source} "
            f"to {e.dest} (task {e.dest_task}); rule {self.rule or '<none>'}: {self.reason}"
        )


class ResidencyViolationError(Exception):
    """Edges the policies forbid. `violations` are the denied decisions; one line each."""

    def __init__(self, violations: Sequence[ResidencyDecision]) -> None:
        self.violations = list(violations)
        n = len(self.violations)
        header = f"{n} residency violation{'s' if n != 1 else ''} (nothing was written):"
        super().__init__("\n".join([header, *(v.line() for v in self.violations)]))


def describe_placement(site: Site) -> str:
    """e.g. `coordinator [coordinator, gcp europe-west4, NL]`."""
    return f"{site.id} [{site.role}, {site.provider} {site.region}, {site.jurisdiction}]"


def _short(rule_name: str, cls: str) -> str:
    """`0` for `<policy> rules.<cls>[0]`, `dp_update[0]` for a fallback class's rule."""
    ref = rule_name.split(" rules.", 1)[1].split(" (for ", 1)[0]
    return ref[len(cls) + 1 : -1] if ref.startswith(f"{cls}[") else ref


def decide(edge: FlowEdge, federation: Federation) -> ResidencyDecision:
    """The decision on one edge (see the module docstring for the deny-by-default order)."""
    known = federation.all_sites
    cls = edge.artifact_class

    def deny(reason: str, rule: str | None = None, text: str = "") -> ResidencyDecision:
        return ResidencyDecision(edge, False, rule, text, reason)

    if edge.kind == "parameter":
        for label, placement in (("source", edge.source), ("destination", edge.dest)):
            if placement not in known:
                return deny(f"{label} placement {placement!r} is not a site of the federation")
        if edge.crosses:
            return deny(
                "a parameter output never crosses placements (it has no artifact class); "
                "pass an artifact with a declared class instead"
            )
        return ResidencyDecision(edge, True, None, "", "same placement, does not cross")
    if cls is None:
        return deny("the artifact declares no artifact class (deny by default)")
    if cls not in ARTIFACT_CLASSES:
        return deny(f"unknown artifact class {cls!r} (known: {', '.join(ARTIFACT_CLASSES)})")
    for label, placement in (("source", edge.source), ("destination", edge.dest)):
        if placement not in known:
            return deny(f"{label} placement {placement!r} is not a site of the federation")
    if not edge.crosses:
        return ResidencyDecision(edge, True, None, "", "same placement, does not cross")
    source = known[edge.source]
    policy: Policy | None = federation.policies.get(source.policy)
    if policy is None:
        return deny(f"site {source.id} names policy {source.policy!r}, which is not loaded")
    dest = known[edge.dest]
    entries = policy.effective_rules(cls)
    for name, rule in entries:
        if rule.matches(dest):
            text = rule.describe()
            return ResidencyDecision(
                edge, True, name, text, f"{describe_placement(dest)} matches {text}"
            )
    searched = f"{policy.id} rules.{cls}"
    if not entries:
        return deny(f"{cls} may go nowhere (no rule)", searched, "[]")
    texts = "; ".join(f"[{_short(n, cls)}] {r.describe()}" for n, r in entries)
    return deny(f"{describe_placement(dest)} matches no rule ({texts})", searched, texts)


def check_flows(edges: Iterable[FlowEdge], federation: Federation) -> list[ResidencyDecision]:
    """A decision for every edge, in input order. Raises nothing: see `violations`/`enforce`."""
    return [decide(edge, federation) for edge in edges]


def violations(decisions: Iterable[ResidencyDecision]) -> list[ResidencyDecision]:
    """The denied decisions."""
    return [d for d in decisions if not d.allowed]


def enforce(decisions: Sequence[ResidencyDecision]) -> None:
    """Raise ResidencyViolationError listing every denied edge, if any."""
    denied = violations(decisions)
    if denied:
        raise ResidencyViolationError(denied)
