"""Site-side admission (pure): the compiled policy and the run against the site's own policy."""

from __future__ import annotations

import json

import pytest

from components.domain.models import DestinationRule, Policy, Site
from components.validate.admission import RunFacts, covers, decide, image_digest
from tests.support.site_inputs import policy_json, site_json

DIGEST = "sha256:" + "ab" * 32
COORDINATOR = Site.parse_obj(
    {
        "apiVersion": "fedpipe.dev/v1",
        "kind": "Site",
        "id": "coordinator",
        "role": "coordinator",
        "deployment": "cloud",
        "provider": "gcp",
        "region": "europe-west4",
        "jurisdiction": "NL",
        "policy": "coordinator",
        "placement": {"node_selector": {"fedpipe.dev/site": "coordinator"}},
        "object_store": {"type": "gcs", "bucket": "coord-bucket", "secret_name": "coord-store"},
    }
)
SITE = Site.parse_raw(site_json("hospital-berlin"))


def policy(**changes) -> Policy:
    body = json.loads(policy_json())
    for path, value in changes.items():
        *parents, leaf = path.split("__")
        node = body
        for name in parents:
            node = node.setdefault(name, {})
        node[leaf] = value
    return Policy.parse_obj(body)


def facts(**changes) -> RunFacts:
    base = {
        "run_id": "run-1",
        "rounds": 5,
        "image": f"registry.example.org/fedpipe@{DIGEST}",
        "rule": "geometric_median",
        "planned_epsilon": 2.5,
        "destinations": {c: [COORDINATOR] for c in ("validation_summary", "dp_update", "metrics")},
    }
    return RunFacts(**{**base, **changes})


def test_the_same_policy_is_admitted():
    admission = decide(SITE, policy(), policy(), facts())
    assert admission.accepted and admission.reasons == ()
    assert admission.checked["rule"] == "geometric_median"
    assert admission.checked["destinations"]["dp_update"] == ["coordinator"]


def test_a_weakened_policy_is_refused_naming_each_difference():
    """Higher ε per round and an extra destination for dp_update, as a compiler could write."""
    weak = policy(dp__epsilon_per_round=8.0)
    rules = json.loads(weak.json())["rules"]
    rules["dp_update"].append({"roles": ["coordinator"], "jurisdictions": ["US"]})
    weak = Policy.parse_obj({**json.loads(weak.json()), "rules": rules})
    admission = decide(SITE, policy(), weak, facts())
    assert not admission.accepted
    assert admission.reasons == (
        "dp.epsilon_per_round: the pipeline allows 8, the site's own policy 3",
        "rules.dp_update[1]: destination `roles=coordinator, jurisdictions=US` is not allowed "
        "by the site's own policy (which allows `roles=coordinator, jurisdictions=EU`)",
    )
    assert "refused the run: dp.epsilon_per_round" in admission.summary()


def test_destinations_the_run_really_uses_are_checked():
    us = COORDINATOR.copy(update={"jurisdiction": "US", "region": "us-east1"})
    admission = decide(SITE, policy(), policy(), facts(destinations={"dp_update": [us]}))
    assert admission.reasons == (
        "dp_update: the run sends it to coordinator (coordinator, US, gcp us-east1), which the "
        "site's own policy does not allow",
    )


def test_image_rule_protection_rounds_and_planned_epsilon():
    own = policy(
        admission__image_digests=[DIGEST],
        admission__aggregation_rules=["geometric_median", "multi_krum"],
        admission__protections=["secagg"],
        admission__max_rounds=3,
    )
    admission = decide(
        SITE,
        own,
        policy(),
        facts(image="ghcr.io/fedpipe/fedpipe:0.1.0", rule="fedavg", planned_epsilon=3.5),
    )
    assert admission.reasons == (
        "rounds: the run has 5, the site's own policy admits at most 3",
        "image 'ghcr.io/fedpipe/fedpipe:0.1.0' is not pinned to a digest; the site admits only "
        + DIGEST,
        "the image this task runs in could not be observed (not observed); the site admits "
        "only images it can check against " + DIGEST,
        "dp: the run's settings spend ε 3.500 per round, the site's own policy allows 3",
        "aggregation rule 'fedavg' is not among the site's admitted rules "
        "['geometric_median', 'multi_krum']",
        "update protection 'none' is not among the site's admitted protections ['secagg']",
    )
    other = f"ghcr.io/fedpipe/fedpipe@sha256:{'cd' * 32}"
    running = {"running_image": other, "running_image_source": "test"}
    assert decide(SITE, own, policy(), facts(image=other, rounds=3, **running)).reasons[0] == (
        f"image digest sha256:{'cd' * 32} is not in the site's allowlist"
    )


def test_dp_off_lifetime_delta_quorum_and_storage():
    own = policy(dp__allow_dp_off=False)
    weak = policy(
        dp__lifetime_epsilon=80.0,
        dp__delta=1e-3,
        aggregation__min_sites=1,
        export__reveal_num_examples=True,
        encryption__at_rest="none",
        retention__object_lock=False,
        metrics__min_cell_count=0,
    )
    own = Policy.parse_obj({**json.loads(own.json()), "export": {"reveal_num_examples": False}})
    admission = decide(SITE, own, weak, facts(dp_enabled=False, planned_epsilon=None))
    assert admission.reasons == (
        "dp.lifetime_epsilon: the pipeline allows 80, the site's own policy 50",
        "dp.delta: the pipeline allows 0.001, the site's own policy 1e-05",
        "dp.allow_dp_off: the pipeline allows DP off, the site's own policy does not",
        "dp: the run trains without DP, which the site's own policy forbids",
        "aggregation.min_sites: the pipeline needs 1 site(s), the site's own policy 2",
        "export.reveal_num_examples: the pipeline reveals the sample count, the site's own "
        "policy hides it",
        "encryption.at_rest: the pipeline says 'none', the site's own policy 'sse-s3'",
        "retention.object_lock: off in the pipeline, on in the site's own policy",
        "metrics.min_cell_count: the pipeline suppresses cells below 0, the site's own policy "
        "below 5",
    )


def test_a_stricter_compiled_policy_is_admitted():
    strict = policy(dp__epsilon_per_round=1.0, dp__delta=1e-6, aggregation__min_sites=3)
    assert decide(SITE, policy(), strict, facts()).accepted


def test_another_policy_id_is_refused():
    other = Policy.parse_obj({**json.loads(policy().json()), "id": "us-health"})
    reasons = decide(SITE, policy(), other, facts()).reasons
    assert reasons == ("the pipeline carries policy 'us-health', the site's own is 'eu-health'",)


@pytest.mark.parametrize(
    ("own", "compiled", "expected"),
    [
        ({"roles": ["coordinator"], "jurisdictions": ["EU"]}, {"roles": ["coordinator"]}, False),
        (
            {"roles": ["coordinator"], "jurisdictions": ["EU"]},
            {"roles": ["coordinator"], "jurisdictions": ["DE", "NL"]},
            True,
        ),
        ({"jurisdictions": ["EEA"]}, {"jurisdictions": ["EU"]}, True),
        ({"jurisdictions": ["EU"]}, {"jurisdictions": ["EEA"]}, False),
        ({"roles": ["coordinator"]}, {"roles": ["coordinator", "site"]}, False),
        ({"roles": ["coordinator"]}, {"sites": ["coordinator"], "roles": ["coordinator"]}, True),
    ],
)
def test_covers(own, compiled, expected):
    assert covers(DestinationRule.parse_obj(own), DestinationRule.parse_obj(compiled)) is expected


def test_image_digest():
    assert image_digest(f"r.example/x@{DIGEST}") == DIGEST
    assert image_digest("r.example/x:1.0") is None


RUNNING = f"registry.example.org/fedpipe@{DIGEST}"


@pytest.mark.parametrize(
    ("running", "reason"),
    [
        (RUNNING, None),
        (
            f"ghcr.io/evil/fedpipe@sha256:{'cd' * 32}",
            f"the image this task runs in has digest sha256:{'cd' * 32} (from pod ns/p), which "
            "is not in the site's allowlist",
        ),
        (
            "ghcr.io/fedpipe/fedpipe:latest",
            "the image this task runs in, 'ghcr.io/fedpipe/fedpipe:latest' (from pod ns/p), is "
            "not pinned to a digest",
        ),
        (
            None,
            "the image this task runs in could not be observed (pod ns/p); the site admits only "
            f"images it can check against {DIGEST}",
        ),
    ],
)
def test_the_image_the_task_runs_in_is_checked_against_the_sites_allowlist(running, reason):
    """The pipeline spec names an allowed image; what the pod runs is checked too."""
    own = policy(admission__image_digests=[DIGEST])
    run = facts(running_image=running, running_image_source="pod ns/p")
    admission = decide(SITE, own, policy(), run)
    assert admission.reasons == (() if reason is None else (reason,))
    assert admission.checked["running_image"] == running


def test_a_running_image_allowed_but_not_the_one_the_pipeline_names_is_refused():
    second = "sha256:" + "ef" * 32
    own = policy(admission__image_digests=[DIGEST, second])
    run = facts(running_image=f"r.example/fedpipe@{second}", running_image_source="pod ns/p")
    assert decide(SITE, own, policy(), run).reasons == (
        f"the pipeline names image digest {DIGEST}, but this task runs in {second} (from pod "
        "ns/p)",
    )


def test_without_an_allowlist_the_running_image_is_not_required():
    assert decide(SITE, policy(), policy(), facts(running_image=None)).accepted


def test_policy_refusals_are_the_run_independent_reasons():
    """What `fedpipe doctor` asks before any run: the own copy refuses every run compiled from
    the repository's policy when it is stricter; run settings (rule, rounds, image) play no
    part."""
    from components.validate.admission import policy_refusals

    own = policy(dp__epsilon_per_round=1.0, admission__max_rounds=1)
    assert policy_refusals(SITE, own, policy()) == (
        "dp.epsilon_per_round: the pipeline allows 3, the site's own policy 1",
    )
    assert policy_refusals(SITE, policy(), policy(dp__epsilon_per_round=1.0)) == ()


def test_the_recommended_robust_rule_can_be_admitted_and_unknown_rules_are_refused():
    own = policy(admission__aggregation_rules=["screened_geometric_median"])
    admission = decide(SITE, own, policy(), facts(rule="screened_geometric_median"))
    assert admission.accepted and admission.checked["rule"] == "screened_geometric_median"
    refused = decide(SITE, own, policy(), facts(rule="geometric_median"))
    assert refused.reasons == (
        "aggregation rule 'geometric_median' is not among the site's admitted rules "
        "['screened_geometric_median']",
    )
    # a misspelt rule in a site's own policy would refuse every run: the policy is refused
    with pytest.raises(ValueError, match=r"'screened_median' is not an aggregation rule"):
        policy(admission__aggregation_rules=["screened_median"])


def test_the_site_s_own_protection_and_a_rule_that_cannot_run_under_it():
    own = policy(aggregation__protection="he")
    compiled_plain = policy()
    refused = decide(SITE, own, compiled_plain, facts(protection="none", rounds=3))
    assert (
        "update protection: the site's own policy asks 'he', the run uses 'none' (its update "
        "would reach the coordinator in the clear)"
    ) in refused.reasons
    he = policy(aggregation__protection="he")
    assert decide(SITE, own, he, facts(protection="he", rule="fedavg", rounds=3)).reasons == ()
    robust = decide(SITE, own, he, facts(protection="he", rule="median", rounds=3))
    assert len(robust.reasons) == 1
    assert robust.reasons[0].startswith(
        "rule 'median' cannot run with aggregation.protection he: a coordinate-wise median"
    )
    # no protection asked: any rule, as before
    assert decide(SITE, policy(), policy(), facts(rule="median", rounds=3)).reasons == ()
