"""The compiled DAG of a federation whose policies ask `aggregation.protection: secagg`: the
SecAgg+ stages, their order, their artifacts' classes, their secrets, and what the compiler
refuses with secagg. The default federation (protection none) compiles without any of them
(`make compile-check` holds its golden YAML)."""

from __future__ import annotations

import json

import pytest
import yaml

from components.domain.models import Policy
from pipelines.compiler import compile_federation
from pipelines.flows import kubernetes_executors
from pipelines.residency.protection import ProtectionError, secagg_settings
from tests.support.example_federation import example_federation

ROUNDS = 2


def _secagg(federation, **policy_changes):
    """`federation` with every policy asking secagg (plus `policy_changes` per policy id)."""
    policies = {}
    for pid, policy in {p.id: p for p in federation.policies.values()}.items():
        body = policy.dict()
        body["aggregation"]["protection"] = "secagg"
        for path, value in policy_changes.get(pid, {}).items():
            section, name = path.split(".")
            body[section][name] = value
        policies[pid] = Policy.parse_obj(body)
    from dataclasses import replace

    return replace(federation, policies=policies)


FED = _secagg(example_federation())
SITES = list(FED.sites)


@pytest.fixture(scope="module")
def compiled():
    result = compile_federation(FED, rounds=ROUNDS)
    spec, platform = yaml.safe_load_all(result.pipeline_yaml)
    return result, spec, kubernetes_executors(platform)


def _tasks(spec):
    return spec["root"]["dag"]["tasks"]


def _upstream(task, name):
    return task["inputs"]["artifacts"][name]["taskOutputArtifact"]["producerTask"]


def test_the_secagg_stages_and_how_many(compiled):
    _, spec, _ = compiled
    n = len(SITES)
    plain = {"initialize", "report"} | {f"aggregate-r{r}" for r in (1, 2)}
    plain |= {f"validate-{s}" for s in SITES}
    plain |= {
        f"{st}-{s}-r{r}" for s in SITES for r in (1, 2) for st in ("train", "export", "evaluate")
    }
    secagg = {"roster", "relay"} | {f"shares-{s}" for s in SITES}
    secagg |= {f"request-r{r}" for r in (1, 2)} | {
        f"answer-{s}-r{r}" for s in SITES for r in (1, 2)
    }
    assert set(_tasks(spec)) == plain | secagg
    assert len(secagg) == n + 2 + ROUNDS * (n + 1)


def test_the_protocol_order_holds_in_every_round(compiled):
    _, spec, _ = compiled
    t = _tasks(spec)
    s = "hospital-paris"
    assert {_upstream(t["roster"], f"validation_{i}") for i in (1, 2, 3)} == {
        f"validate-{x}" for x in SITES
    }
    assert _upstream(t[f"shares-{s}"], "roster") == "roster"
    assert _upstream(t[f"shares-{s}"], "validation") == f"validate-{s}"
    assert {_upstream(t["relay"], f"shares_{i}") for i in (1, 2, 3)} == {
        f"shares-{x}" for x in SITES
    }
    for r in (1, 2):
        assert _upstream(t[f"export-{s}-r{r}"], "relay") == "relay"
        assert _upstream(t[f"export-{s}-r{r}"], "local_model") == f"train-{s}-r{r}"
        assert {_upstream(t[f"request-r{r}"], f"update_{i}") for i in (1, 2, 3)} == {
            f"export-{x}-r{r}" for x in SITES
        }
        assert _upstream(t[f"answer-{s}-r{r}"], "request") == f"request-r{r}"
        assert _upstream(t[f"answer-{s}-r{r}"], "update") == f"export-{s}-r{r}"
        agg = t[f"aggregate-r{r}"]
        assert {_upstream(agg, f"answer_{i}") for i in (1, 2, 3)} == {
            f"answer-{x}-r{r}" for x in SITES
        }
        assert _upstream(agg, "request") == f"request-r{r}"
        assert _upstream(t[f"evaluate-{s}-r{r}"], "global_model") == f"aggregate-r{r}"
    assert _upstream(t["request-r2"], "previous_model") == "aggregate-r1"


def test_every_new_artifact_has_a_class_the_checker_allowed(compiled):
    result, _, _ = compiled
    classes = {}
    for d in result.decisions:
        edge = d.edge
        stage = edge.task.split("-")[0]
        if stage in ("roster", "shares", "relay", "request", "answer") or (stage == "export"):
            classes.setdefault((stage, edge.artifact), set()).add(edge.artifact_class)
            assert d.allowed, d
    assert classes[("export", "update")] == {"masked_update"}
    for key in (("roster", "roster"), ("shares", "shares")):
        assert classes[key] == {"secagg_public"}
    for key in (("relay", "relay"), ("request", "request"), ("answer", "answer")):
        assert classes[key] == {"secagg_public"}
    crossing = {
        (d.edge.task.split("-")[0], d.edge.dest_task.split("-")[0])
        for d in result.decisions
        if d.edge.source != d.edge.dest
    }
    assert ("export", "request") in crossing and ("roster", "shares") in crossing
    assert ("relay", "export") in crossing and ("answer", "aggregate") in crossing


def test_site_steps_hold_only_their_own_keys_coordinator_steps_only_read_keys(compiled):
    _, spec, executors = compiled
    t = _tasks(spec)
    own = {s: FED.sites[s].object_store.secret_name for s in SITES}
    for name in ("roster", "relay", "request-r1"):
        label = spec["components"][t[name]["componentRef"]["name"]]["executorLabel"]
        secrets = {e["secretName"] for e in executors[label].get("secretAsEnv", [])}
        assert not secrets & set(own.values()), (name, secrets)
        assert {f"{v}-coordinator-read" for v in own.values()} <= secrets
        # each signs what it publishes (roster, exclusions at relay, request)
        signing = {
            item["secretKey"]
            for e in executors[label].get("secretAsEnv", [])
            if e["secretName"] == FED.coordinator.object_store.secret_name
            for item in e.get("keyToEnv", [])
        }
        assert "signing-key" in signing, (name, signing)
    for s in SITES:
        for name in (f"validate-{s}", f"shares-{s}", f"answer-{s}-r1"):
            label = spec["components"][t[name]["componentRef"]["name"]]["executorLabel"]
            secrets = {e["secretName"] for e in executors[label].get("secretAsEnv", [])}
            assert own[s] in secrets and not secrets & (set(own.values()) - {own[s]}), name


def test_the_compiled_settings(compiled):
    _, spec, _ = compiled
    params = _tasks(spec)["aggregate-r1"]["inputs"]["parameters"]
    settings = json.loads(params["secagg_json"]["runtimeValue"]["constant"])
    assert settings == json.loads(secagg_settings(FED).to_json())
    assert settings["num_sites"] == 3 and settings["weighting"] == "uniform"
    assert settings["modulus_bits"] == 64


def test_the_compiler_refuses_what_secagg_cannot_hold():
    fed = example_federation()
    mixed = _secagg(fed, **{"us-health": {"export.reveal_num_examples": True}})
    with pytest.raises(ProtectionError, match="disagree on export.reveal_num_examples"):
        compile_federation(mixed)
    unsigned_body = fed.coordinator.dict()
    unsigned_body["signing"] = None
    from dataclasses import replace

    from components.domain.models import Site

    no_key = replace(_secagg(fed), coordinator=Site.parse_obj(unsigned_body))
    with pytest.raises(ProtectionError, match="coordinator coordinator names no signing"):
        compile_federation(no_key)


def _with_secagg_parameters(params_by_policy):
    fed = example_federation()
    return _secagg(fed, **{pid: {"aggregation.secagg": p} for pid, p in params_by_policy.items()})


def test_the_policies_secagg_parameters_are_compiled():
    params = {"neighbours": 2, "threshold": 3, "norm_bound": 10.0, "word_bits": 32}
    fed = _with_secagg_parameters({"eu-health": params, "us-health": params})
    result = compile_federation(fed, rounds=1)
    spec, _ = yaml.safe_load_all(result.pipeline_yaml)
    compiled = json.loads(
        _tasks(spec)["aggregate-r1"]["inputs"]["parameters"]["secagg_json"]["runtimeValue"][
            "constant"
        ]
    )
    assert compiled["neighbours"] == 2 and compiled["threshold"] == 3
    assert compiled["norm_bound"] == 10.0 and compiled["modulus_bits"] == 32
    assert secagg_settings(fed).graph(3) == (2, 3)


def test_the_compiler_refuses_impossible_secagg_parameters_naming_policy_and_field():
    too_high = _with_secagg_parameters(
        {"eu-health": {"threshold": 4}, "us-health": {"threshold": 4}}
    )
    with pytest.raises(ProtectionError) as refused:
        compile_federation(too_high)
    assert "aggregation.secagg.threshold (policy eu-health, us-health)" in str(refused.value)
    assert "exceeds the k + 1 = 3 holders" in str(refused.value)
    # a policy that leaves it out follows the ones that set it; two that set it must agree
    follows = _with_secagg_parameters({"eu-health": {"norm_bound": 10.0}})
    assert secagg_settings(follows).norm_bound == 10.0
    disagree = _with_secagg_parameters(
        {"eu-health": {"norm_bound": 10.0}, "us-health": {"norm_bound": 20.0}}
    )
    with pytest.raises(ProtectionError, match="disagree on aggregation.secagg") as refused:
        compile_federation(disagree)
    assert "eu-health" in str(refused.value)
    # the schema refuses an odd neighbour count and a word size other than 32 or 64
    for bad in ({"neighbours": 3}, {"word_bits": 16}, {"norm_bound": 0}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            _with_secagg_parameters({"eu-health": bad})


def test_secagg_parameters_under_another_protection_are_refused_naming_policy_and_field():
    fed = example_federation()
    policies = {}
    for pid, policy in {p.id: p for p in fed.policies.values()}.items():
        body = policy.dict()
        if pid == "eu-health":
            body["aggregation"]["secagg"] = {"norm_bound": 10.0}
        policies[pid] = Policy.parse_obj(body)
    from dataclasses import replace

    stray = replace(fed, policies=policies)
    assert stray.policy_of(next(iter(stray.sites))).aggregation.protection == "none"
    with pytest.raises(ProtectionError) as refused:
        compile_federation(stray)
    assert refused.value.problems == [
        "policy eu-health: aggregation.secagg is set but its aggregation.protection is none; "
        "SecAgg+ parameters apply only under protection secagg: remove aggregation.secagg or "
        "set aggregation.protection secagg"
    ]
    # reported with the other problems at once: here us-health asks secagg, eu-health not
    body = policies["us-health"].dict()
    body["aggregation"]["protection"] = "secagg"
    conflict = replace(stray, policies={**policies, "us-health": Policy.parse_obj(body)})
    with pytest.raises(ProtectionError) as refused:
        compile_federation(conflict)
    assert len(refused.value.problems) == 2
    assert refused.value.problems[0].startswith("policy eu-health: aggregation.secagg is set")
    assert "needs every member site's policy to ask for it" in refused.value.problems[1]
