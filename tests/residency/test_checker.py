"""Residency decisions on hand-built edges over the example federation (expected by hand)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from components.domain.federation import Federation
from components.domain.models import Site
from pipelines.config.loader import federation_from_models, load_federation
from pipelines.residency import (
    FlowEdge,
    ResidencyViolationError,
    allowed_destinations,
    check_flows,
    decide,
    enforce,
    standard_flows,
    violations,
)
from tests.support.paths import REPO


@pytest.fixture(scope="module")
def fed() -> Federation:
    return load_federation(REPO / "sites", REPO / "policies")


def moved_coordinator(fed: Federation, region: str, jurisdiction: str) -> Federation:
    coord = Site.parse_obj(
        {**fed.coordinator.dict(), "region": region, "jurisdiction": jurisdiction}
    )
    return federation_from_models([*fed.sites.values(), coord], fed.policies.values())


def export_edge(site: str = "hospital-berlin", cls: str | None = "dp_update") -> FlowEdge:
    return FlowEdge(f"export-{site}-r1", "update", cls, site, "aggregate-r1", "coordinator")


def test_eu_dp_update_to_eu_coordinator_is_allowed_by_rule_0(fed):
    d = decide(export_edge(), fed)
    assert d.allowed and d.crossing
    assert d.rule == "eu-health rules.dp_update[0]"
    assert d.rule_text == "roles=coordinator, jurisdictions=EU"


def test_eu_dp_update_to_us_east_coordinator_is_denied(fed):
    us = moved_coordinator(fed, "us-east1", "US")
    d = decide(export_edge(), us)
    assert not d.allowed
    assert d.rule == "eu-health rules.dp_update"
    assert d.line() == (
        "DENIED: task export-hospital-berlin-r1 artifact update (class dp_update) from site "
        "hospital-berlin to coordinator (task aggregate-r1); rule eu-health rules.dp_update: "
        "coordinator [coordinator, gcp us-east1, US] matches no rule "
        "([0] roles=coordinator, jurisdictions=EU)"
    )


def test_us_clinic_may_use_the_eu_processor_and_a_us_coordinator(fed):
    assert decide(export_edge("clinic-boston"), fed).rule == "us-health rules.dp_update[1]"
    us = moved_coordinator(fed, "us-east1", "US")
    assert decide(export_edge("clinic-boston"), us).rule == "us-health rules.dp_update[0]"
    # Singapore matches neither the US nor the EU rule
    sg = moved_coordinator(fed, "asia-southeast1", "SG")
    assert not decide(export_edge("clinic-boston"), sg).allowed


def test_missing_and_unknown_class_are_denied_even_on_one_placement(fed):
    local = FlowEdge("train-hospital-berlin-r1", "local_model", None, "hospital-berlin",
                     "export-hospital-berlin-r1", "hospital-berlin")  # fmt: skip
    d = decide(local, fed)
    assert not d.allowed and not d.crossing and d.rule is None
    assert "declares no artifact class" in d.reason
    d = decide(replace(local, artifact_class="weights"), fed)
    assert not d.allowed and "unknown artifact class 'weights'" in d.reason
    d = decide(export_edge(cls=None), fed)
    assert not d.allowed and "(class <none>)" in d.line()


def test_same_placement_needs_no_rule(fed):
    local = FlowEdge("train-hospital-berlin-r1", "local_model", "local_model", "hospital-berlin",
                     "export-hospital-berlin-r1", "hospital-berlin")  # fmt: skip
    d = decide(local, fed)
    assert d.allowed and not d.crossing and d.rule is None and d.reason.startswith("same placement")


@pytest.mark.parametrize("cls", ["raw_data", "local_model", "global_model"])
def test_class_without_rule_goes_nowhere(fed, cls):
    d = decide(export_edge(cls=cls), fed)
    assert not d.allowed
    assert d.rule == f"eu-health rules.{cls}"
    assert d.reason == f"{cls} may go nowhere (no rule)"


def test_site_to_site_crossing_is_denied(fed):
    edge = FlowEdge("evaluate-hospital-berlin-r1", "evaluation", "metrics", "hospital-berlin",
                    "report-hospital-paris", "hospital-paris")  # fmt: skip
    d = decide(edge, fed)
    assert (
        not d.allowed and "hospital-paris [site, on-prem fr-paris, FR] matches no rule" in d.reason
    )


def test_coordinator_global_model_reaches_sites_not_beyond_role(fed):
    edge = FlowEdge("aggregate-r1", "global_model", "global_model", "coordinator",
                    "train-clinic-boston-r2", "clinic-boston")  # fmt: skip
    assert decide(edge, fed).rule == "coordinator rules.global_model[0]"
    edge = replace(edge, artifact_class="dp_update")
    assert not decide(edge, fed).allowed


def test_missing_policy_and_unknown_placement_are_denied(fed):
    no_eu = Federation(
        sites=fed.sites,
        coordinator=fed.coordinator,
        policies={k: v for k, v in fed.policies.items() if k != "eu-health"},
    )
    d = decide(export_edge(), no_eu)
    assert not d.allowed and "names policy 'eu-health', which is not loaded" in d.reason
    d = decide(replace(export_edge(), dest="coordinator-2"), fed)
    assert not d.allowed and "destination placement 'coordinator-2'" in d.reason
    d = decide(replace(export_edge(), source="hospital-rome"), fed)
    assert not d.allowed and "source placement 'hospital-rome'" in d.reason


def test_violation_error_lists_one_line_per_violation(fed):
    us = moved_coordinator(fed, "us-east1", "US")
    edges = [export_edge(), export_edge("hospital-paris"), export_edge("clinic-boston")]
    decisions = check_flows(edges, us)
    assert [d.allowed for d in decisions] == [False, False, True]
    with pytest.raises(ResidencyViolationError) as info:
        enforce(decisions)
    lines = str(info.value).splitlines()
    assert lines[0] == "2 residency violations (nothing was written):"
    assert lines[1:] == [d.line() for d in decisions[:2]]
    assert "site hospital-paris" in lines[2] and "eu-health rules.dp_update" in lines[2]
    assert info.value.violations == decisions[:2]
    enforce(check_flows(edges, fed))  # all allowed: no exception


def test_standard_flows_of_the_example(fed):
    edges = standard_flows(fed)
    # per site: summary, update, evaluation to the coordinator + global model to train, export,
    # evaluate
    assert len(edges) == 3 * 6
    assert all(e.crosses for e in edges)
    assert violations(check_flows(edges, fed)) == []
    denied = violations(check_flows(edges, moved_coordinator(fed, "us-east1", "US")))
    assert sorted((d.edge.source, d.edge.artifact_class) for d in denied) == [
        (site, cls)
        for site in ("hospital-berlin", "hospital-paris")
        for cls in ("dp_update", "metrics", "validation_summary")
    ]


def test_allowed_destinations(fed):
    dests = allowed_destinations(fed, "hospital-berlin", "dp_update")
    assert [(a.destination, a.rule) for a in dests] == [
        ("coordinator", "eu-health rules.dp_update[0]")
    ]
    assert allowed_destinations(fed, "hospital-berlin", "raw_data") == []
    to_sites = allowed_destinations(fed, "coordinator", "global_model")
    assert [a.destination for a in to_sites] == [
        "clinic-boston",
        "hospital-berlin",
        "hospital-paris",
    ]


def _parameter_edge(dest: str, dest_task: str) -> FlowEdge:
    return FlowEdge("validate-hospital-berlin", "admission", None, "hospital-berlin", dest_task,
                    dest, kind="parameter")  # fmt: skip


def test_parameter_stays_on_its_site(fed):
    d = decide(_parameter_edge("hospital-berlin", "train-hospital-berlin-r1"), fed)
    assert d.allowed and not d.crossing and d.reason.startswith("same placement")


def test_parameter_never_crosses_even_where_a_class_could(fed):
    # validation_summary may reach the EU coordinator, a class-less parameter may not
    d = decide(_parameter_edge("coordinator", "aggregate-r1"), fed)
    assert not d.allowed and "parameter output never crosses" in d.reason
    d = decide(_parameter_edge("nowhere", "aggregate-r1"), fed)
    assert not d.allowed and "'nowhere' is not a site" in d.reason


def test_a_masked_update_goes_where_a_dp_update_may_and_no_further(fed):
    d = decide(export_edge(cls="masked_update"), fed)
    assert d.allowed and d.rule == "eu-health rules.dp_update[0] (for masked_update)"
    us = moved_coordinator(fed, "us-east1", "US")
    denied = decide(export_edge(cls="masked_update"), us)
    assert not denied.allowed
    assert denied.rule == "eu-health rules.masked_update"
    assert "matches no rule ([dp_update[0]] roles=coordinator, jurisdictions=EU)" in denied.line()


def test_rules_of_its_own_replace_the_fallback(fed):
    from components.domain.models import Policy

    eu = fed.policies["eu-health"]
    body = eu.dict()
    body["rules"]["masked_update"] = [{"roles": ["coordinator"]}]
    own = Policy.parse_obj(body)
    names = [n for n, _ in own.effective_rules("masked_update")]
    assert names == ["eu-health rules.masked_update[0]"]
    us = moved_coordinator(fed, "us-east1", "US")
    changed = federation_from_models(
        [*us.sites.values(), us.coordinator],
        [own if p.id == "eu-health" else p for p in us.policies.values()],
    )
    assert decide(
        export_edge(cls="masked_update"), changed
    ).allowed  # its own rule: any coordinator
    assert not decide(export_edge(), changed).allowed  # the DP update still may not go there


def test_secagg_messages_travel_where_updates_and_global_models_do(fed):
    to_coordinator = decide(export_edge(cls="secagg_public"), fed)
    assert to_coordinator.allowed
    assert to_coordinator.rule == "eu-health rules.dp_update[0] (for secagg_public)"
    roster = FlowEdge(
        "secagg-roster-r1",
        "roster",
        "secagg_public",
        "coordinator",
        "export-clinic-boston-r1",
        "clinic-boston",
    )
    back = decide(roster, fed)
    assert back.allowed and back.rule.endswith("rules.global_model[0] (for secagg_public)")
    sends = {a.destination for a in allowed_destinations(fed, "hospital-berlin", "masked_update")}
    assert sends == {"coordinator"}


def test_feature_statistics_go_where_a_dp_update_may_unless_ruled_otherwise(fed):
    d = decide(export_edge(cls="feature_stats"), fed)
    assert d.allowed and d.rule == "eu-health rules.dp_update[0] (for feature_stats)"
    us = moved_coordinator(fed, "us-east1", "US")
    denied = decide(export_edge(cls="feature_stats"), us)
    assert not denied.allowed and denied.rule == "eu-health rules.feature_stats"
    from components.domain.models import Policy

    body = fed.policies["eu-health"].dict()
    body["rules"]["feature_stats"] = []  # explicit [] is absent: the fallback still decides
    body["rules"]["dp_update"] = []
    none = Policy.parse_obj(body)
    assert none.effective_rules("feature_stats") == []
