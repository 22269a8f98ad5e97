"""Flow-graph extraction: placement from pod labels, class from output descriptions."""

from pipelines.flows import UNPLACED, flow_edges, task_placements
from pipelines.residency import check_flows
from tests.support.example_federation import example_federation


def _spec(description: str | None):
    output = {"artifactType": {"schemaTitle": "system.Artifact"}}
    if description is not None:
        output["description"] = description
    return {
        "components": {
            "comp-export": {"executorLabel": "exec-export", "outputDefinitions": {"artifacts": {"update": output}}},
            "comp-aggregate": {"executorLabel": "exec-aggregate"},
            "comp-stray": {"executorLabel": "exec-stray"},
        },
        "root": {
            "dag": {
                "tasks": {
                    "export": {"componentRef": {"name": "comp-export"}},
                    "aggregate": {
                        "componentRef": {"name": "comp-aggregate"},
                        "inputs": {
                            "artifacts": {
                                "update_1": {"taskOutputArtifact": {"producerTask": "export", "outputArtifactKey": "update"}}
                            }
                        },
                    },
                    "stray": {
                        "componentRef": {"name": "comp-stray"},
                        "inputs": {
                            "artifacts": {
                                "x": {"taskOutputArtifact": {"producerTask": "export", "outputArtifactKey": "update"}}
                            }
                        },
                    },
                }
            }
        },
    }  # fmt: skip


def _platform():
    def labels(site):
        return {"podMetadata": {"labels": {"fedpipe.dev/site": site}}}

    executors = {"exec-export": labels("hospital-berlin"), "exec-aggregate": labels("coordinator")}
    return {"platforms": {"kubernetes": {"deploymentSpec": {"executors": executors}}}}


def test_placements_from_pod_labels():
    assert task_placements(_spec("x"), _platform()) == {
        "export": "hospital-berlin",
        "aggregate": "coordinator",
        "stray": UNPLACED,
    }


def test_edges_carry_class_and_placements_and_are_checked():
    edges = flow_edges(_spec("fedpipe.artifact_class=dp_update"), _platform())
    assert [
        (e.task, e.artifact, e.artifact_class, e.source, e.dest_task, e.dest) for e in edges
    ] == [
        ("export", "update", "dp_update", "hospital-berlin", "aggregate", "coordinator"),
        ("export", "update", "dp_update", "hospital-berlin", "stray", UNPLACED),
    ]
    allowed = [d.allowed for d in check_flows(edges, example_federation())]
    assert allowed == [True, False]  # an unplaced consumer is denied


def test_output_without_class_is_a_violation():
    edges = flow_edges(_spec(None), _platform())
    decisions = check_flows(edges[:1], example_federation())
    assert edges[0].artifact_class is None
    assert not decisions[0].allowed
    assert "no artifact class" in decisions[0].reason


def test_no_platform_spec_means_every_task_unplaced():
    edges = flow_edges(_spec("fedpipe.artifact_class=metrics"), None)
    assert {e.source for e in edges} == {UNPLACED}


def test_compiled_crossings_match_the_static_standard_flows():
    from pipelines.compiler import compile_federation
    from pipelines.residency import standard_flows

    fed = example_federation()
    compiled = {
        (e.source, e.dest, e.artifact_class) for e in compile_federation(fed).edges if e.crosses
    }
    standard = {(e.source, e.dest, e.artifact_class) for e in standard_flows(fed)}
    assert compiled == standard


def test_a_federated_zscore_federation_adds_the_statistics_crossings_in_both():
    from components.domain.contract import Encoding, Statistics
    from pipelines.compiler import compile_federation
    from pipelines.config.loader import federation_from_models
    from pipelines.residency import standard_flows

    base = example_federation()
    encoding = Encoding(scaling="federated_zscore", statistics=Statistics(epsilon=1.0))
    fed = federation_from_models(
        [*base.sites.values(), base.coordinator],
        base.policies.values(),
        contracts=[base.contract.copy(update={"encoding": encoding})],
    )
    compiled = {
        (e.source, e.dest, e.artifact_class) for e in compile_federation(fed).edges if e.crosses
    }
    standard = {(e.source, e.dest, e.artifact_class) for e in standard_flows(fed)}
    assert compiled == standard
    assert {(s, "coordinator", "feature_stats") for s in base.sites} <= standard
    assert not any(e.artifact_class == "feature_stats" for e in standard_flows(base))


def test_a_secagg_federation_adds_the_protocol_crossings_in_both():
    from dataclasses import replace

    from components.domain.models import Policy
    from pipelines.compiler import compile_federation
    from pipelines.residency import standard_flows

    base = example_federation()
    policies = {}
    for pid, policy in base.policies.items():
        body = policy.dict()
        body["aggregation"]["protection"] = "secagg"
        policies[pid] = Policy.parse_obj(body)
    fed = replace(base, policies=policies)
    compiled = {
        (e.source, e.dest, e.artifact_class) for e in compile_federation(fed).edges if e.crosses
    }
    standard = {(e.source, e.dest, e.artifact_class) for e in standard_flows(fed)}
    assert compiled == standard
    assert {(s, "coordinator", "masked_update") for s in base.sites} <= standard
    assert {("coordinator", s, "secagg_public") for s in base.sites} <= standard
    assert not any(e.artifact_class == "dp_update" for e in standard_flows(fed))
