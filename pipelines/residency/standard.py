"""Static residency questions that need no compiled DAG (used by `fedpipe check`/`explain`).

`standard_flows` lists the crossings every fedpipe round makes: each site's validation summary,
DP update and metrics go to the coordinator, and the coordinator's global model comes back;
under secagg the update is a `masked_update` and the SecAgg+ messages (`secagg_public`) go
both ways.
"""

from __future__ import annotations

from dataclasses import dataclass

from components.domain.federation import Federation
from components.domain.models import ARTIFACT_CLASSES
from pipelines.residency.checker import FlowEdge

# (producing stage, output, class, consuming stage) of a site's outputs that reach the coordinator
_SITE_TO_COORDINATOR = (
    ("validate", "summary", "validation_summary", "report"),
    ("export", "update", "dp_update", "aggregate"),
    ("evaluate", "evaluation", "metrics", "report"),
)
# a federated_zscore contract's statistics round: each site's release reaches `scaling`
_STATS_TO_COORDINATOR = ("stats", "stats", "feature_stats", "scaling")
# coordinator outputs that reach every site (as in the compiled DAG: train and export start
# from the global model, evaluate scores it)
_COORDINATOR_TO_SITE = (
    ("aggregate", "global_model", "global_model", ("train", "export", "evaluate")),
)
# secagg (pipelines/dag.py): the SecAgg+ messages each way, and the masked update to the
# coordinator's request and aggregate tasks
_SECAGG_SITE_TO_COORDINATOR = (
    ("shares", "shares", "secagg_public", "relay"),
    ("export", "update", "masked_update", "request"),
    ("answer", "answer", "secagg_public", "aggregate"),
)
_SECAGG_COORDINATOR_TO_SITE = (
    ("roster", "roster", "secagg_public", ("shares",)),
    ("relay", "relay", "secagg_public", ("export",)),
    ("request", "request", "secagg_public", ("answer",)),
)


def standard_flows(federation: Federation) -> list[FlowEdge]:
    """The crossing edges of one round, per site (sorted by site id), without compiling.

    Task names are `<stage>@<site id>` (e.g. `export@hospital-berlin`, `aggregate@coordinator`).
    """
    coord = federation.coordinator.id
    edges: list[FlowEdge] = []
    site_outputs = _SITE_TO_COORDINATOR
    if _protection(federation) == "he":  # the update leaves encrypted (pipelines/dag.py)
        site_outputs = tuple(
            (stage, output, "masked_update" if output == "update" else cls, consumer)
            for stage, output, cls, consumer in site_outputs
        )
    coordinator_outputs = _COORDINATOR_TO_SITE
    if _protection(federation) == "secagg":
        site_outputs = tuple(
            (stage, output, "masked_update" if output == "update" else cls, consumer)
            for stage, output, cls, consumer in site_outputs
        )
        site_outputs = (*site_outputs, *_SECAGG_SITE_TO_COORDINATOR)
        coordinator_outputs = (*coordinator_outputs, *_SECAGG_COORDINATOR_TO_SITE)
    if federation.contract.encoding.scaling == "federated_zscore":
        site_outputs = (*site_outputs, _STATS_TO_COORDINATOR)
    for sid in federation.sites:
        for stage, output, cls, consumer in site_outputs:
            edges.append(FlowEdge(f"{stage}@{sid}", output, cls, sid, f"{consumer}@{coord}", coord))
        for stage, output, cls, consumers in coordinator_outputs:
            for consumer in consumers:
                edges.append(
                    FlowEdge(f"{stage}@{coord}", output, cls, coord, f"{consumer}@{sid}", sid)
                )
    return edges


def _protection(federation: Federation) -> str:
    from components.domain.protection import ProtectionConflict, federation_protection

    try:
        return federation_protection(
            {p.id: p.aggregation.protection for p in federation.governing.values()}
        )
    except ProtectionConflict:
        return "none"  # the compiler names the conflict; check shows the plain flows


@dataclass(frozen=True)
class AllowedDestination:
    """One destination a class may reach from a site, and the rule that allows it."""

    destination: str
    rule: str
    rule_text: str


def allowed_destinations(
    federation: Federation, site_id: str, artifact_class: str
) -> list[AllowedDestination]:
    """Which other placements of the federation `artifact_class` may reach from `site_id`.

    Each destination appears once, with the first rule (lowest index) that allows it.
    """
    source = federation.site(site_id)
    policy = federation.policies[source.policy]
    entries = policy.effective_rules(artifact_class)
    out = []
    for dest in federation.all_sites.values():
        if dest.id == site_id:
            continue
        for name, rule in entries:
            if rule.matches(dest):
                out.append(AllowedDestination(dest.id, name, rule.describe()))
                break
    return out


def destination_table(federation: Federation, site_id: str) -> dict[str, list[AllowedDestination]]:
    """artifact class -> allowed destinations from `site_id`, for every class (in schema order)."""
    return {cls: allowed_destinations(federation, site_id, cls) for cls in ARTIFACT_CLASSES}
