"""Site and Policy models: every field rule, canonical JSON and digests."""

from __future__ import annotations

import copy
import hashlib
import json
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from pydantic import ValidationError

from components.common.manifest import generate_keypair
from components.domain.canonical import canonical_json, policy_digest, site_digest
from components.domain.models import DestinationRule, Policy, Site

_, PUBLIC_PEM = generate_keypair()


def site_dict(**overrides: Any) -> dict[str, Any]:
    d: dict[str, Any] = {
        "apiVersion": "fedpipe.dev/v1",
        "kind": "Site",
        "id": "hospital-berlin",
        "role": "site",
        "deployment": "on-prem",
        "provider": "on-prem",
        "region": "de-berlin",
        "jurisdiction": "DE",
        "policy": "eu-health",
        "placement": {
            "node_selector": {"fedpipe.dev/site": "hospital-berlin"},
            "tolerations": [
                {
                    "key": "fedpipe.dev/site",
                    "operator": "Equal",
                    "value": "hospital-berlin",
                    "effect": "NoSchedule",
                }
            ],
        },  # fmt: skip
        "data": {
            "contract": "breast_cancer",
            "uri": "s3://hospital-berlin-fl/data/train.csv",
            "holdout_uri": "s3://hospital-berlin-fl/data/holdout.csv",
            "snapshot": "2026-11-01",
        },
        "object_store": {
            "type": "s3",
            "endpoint": "minio.hospital-berlin.svc:9000",
            "bucket": "hospital-berlin-fl",
            "secret_name": "hospital-berlin-object-store",
            "secure": True,
        },
        "signing": {"public_key": PUBLIC_PEM},
    }
    d.update(overrides)
    return d


def coordinator_dict(**overrides: Any) -> dict[str, Any]:
    d = site_dict(
        id="coordinator",
        role="coordinator",
        deployment="cloud",
        provider="gcp",
        region="europe-west4",
        jurisdiction="NL",
        policy="coordinator",
        placement={"node_selector": {"fedpipe.dev/site": "coordinator"}},
        object_store={"type": "gcs", "bucket": "fedpipe-global", "secret_name": "coord-store"},
    )
    del d["data"], d["signing"]
    d.update(overrides)
    return d


def policy_dict(**overrides: Any) -> dict[str, Any]:
    d: dict[str, Any] = {
        "apiVersion": "fedpipe.dev/v1",
        "kind": "ResidencyPolicy",
        "id": "eu-health",
        "description": "EU health data",
        "rules": {"dp_update": [{"roles": ["coordinator"], "jurisdictions": ["EU"]}]},
        "dp": {"epsilon_per_round": 3.0, "lifetime_epsilon": 50, "delta": 1e-5},
        "aggregation": {"min_sites": 2},
        "encryption": {"at_rest": "sse-s3"},
        "retention": {"days": 30},
    }
    d.update(overrides)
    return d


def errors_of(model: type, data: dict[str, Any]) -> dict[tuple, str]:
    with pytest.raises(ValidationError) as info:
        model.parse_obj(data)
    return {tuple(p for p in e["loc"] if p != "__root__"): e["msg"] for e in info.value.errors()}


def test_valid_site_and_coordinator_parse():
    site = Site.parse_obj(site_dict())
    assert site.role == "site" and site.data is not None and site.data.snapshot == "2026-11-01"
    coord = Site.parse_obj(coordinator_dict())
    assert coord.is_coordinator and coord.data is None and coord.signing is None
    assert coord.object_store.endpoint is None


def test_misspelt_missing_and_wrong_type_all_reported():
    d = site_dict()
    d["jurisdicton"] = d.pop("jurisdiction")
    del d["region"]
    d["object_store"] = {**d["object_store"], "secure": "maybe"}
    errors = errors_of(Site, d)
    assert set(errors) == {
        ("jurisdicton",),
        ("jurisdiction",),
        ("region",),
        ("object_store", "secure"),
    }
    assert errors[("jurisdicton",)] == "extra fields not permitted"
    assert errors[("region",)] == "field required"


def test_api_version_and_kind_checked():
    errors = errors_of(Site, site_dict(apiVersion="fedpipe.dev/v2", kind="Policy"))
    assert "unsupported apiVersion 'fedpipe.dev/v2'" in errors[("apiVersion",)]
    assert ("kind",) in errors
    assert ("apiVersion",) in errors_of(
        Site, {k: v for k, v in site_dict().items() if k != "apiVersion"}
    )


@pytest.mark.parametrize(
    ("overrides", "loc", "fragment"),
    [
        ({"id": "Hospital_Berlin"}, ("id",), "not a valid id"),
        ({"jurisdiction": "UK"}, ("jurisdiction",), "use GB"),
        ({"jurisdiction": "EU"}, ("jurisdiction",), "not an ISO 3166-1"),
        ({"provider": "gcp"}, ("provider",), "on-prem deployment"),
        ({"deployment": "cloud"}, ("provider",), "cloud provider"),
        ({"data": None}, ("data",), "required for a site"),
        ({"signing": None}, ("signing",), "required for a site"),
        ({"signing": {"public_key": "not a key"}}, ("signing", "public_key"), "not a PEM"),
        ({"placement": {"node_selector": {}}}, ("placement", "node_selector"), "at least one"),
    ],
)
def test_site_field_rules(overrides, loc, fragment):
    errors = errors_of(Site, site_dict(**overrides))
    assert fragment in errors[loc], errors


def test_data_must_live_in_own_bucket():
    d = site_dict()
    d["data"] = {**d["data"], "uri": "s3://someone-else/data/train.csv"}
    assert "outside the site's own bucket" in errors_of(Site, d)[("data",)]
    d = site_dict()
    d["data"] = {**d["data"], "holdout_uri": d["data"]["uri"]}
    assert "must differ" in errors_of(Site, d)[("data", "holdout_uri")]


def test_coordinator_must_not_hold_data_and_s3_needs_endpoint():
    d = coordinator_dict(data=site_dict()["data"])
    assert "holds no data" in errors_of(Site, d)[("data",)]
    store = {"type": "s3", "bucket": "x-fl", "secret_name": "x"}
    assert (
        "needs an endpoint"
        in errors_of(Site, site_dict(object_store=store))[("object_store", "endpoint")]
    )
    store = {**store, "endpoint": "https://minio:9000"}
    assert (
        "without a scheme"
        in errors_of(Site, site_dict(object_store=store))[("object_store", "endpoint")]
    )


def test_rsa_key_is_refused():
    key = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    pem = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    assert (
        "not an Ed25519"
        in errors_of(Site, site_dict(signing={"public_key": pem}))[("signing", "public_key")]
    )


def test_toleration_exists_has_no_value():
    d = site_dict()
    d["placement"] = {
        "node_selector": {"a": "b"},
        "tolerations": [{"key": "k", "operator": "Exists", "value": "v"}],
    }
    assert ("placement", "tolerations", 0, "value") in errors_of(Site, d)


def test_policy_defaults_and_rules_for():
    policy = Policy.parse_obj(policy_dict())
    assert policy.rules_for("raw_data") == []  # absent = nowhere
    assert policy.export.reveal_num_examples is False
    assert policy.metrics.min_cell_count == 5
    assert policy.retention.object_lock is True
    assert policy.dp.lifetime_epsilon == 50.0 and policy.dp.allow_dp_off is False
    assert Policy.rule_name("eu-health", "dp_update", 0) == "eu-health rules.dp_update[0]"
    with pytest.raises(ValueError, match="unknown artifact class"):
        policy.rules_for("weights")


@pytest.mark.parametrize(
    ("overrides", "loc", "fragment"),
    [
        ({"rules": {"dp_updates": []}}, ("rules", "dp_updates"), "extra fields"),
        ({"rules": {"dp_update": [{}]}}, ("rules", "dp_update", 0), "at least one of"),
        ({"rules": {"metrics": [{"jurisdictions": ["XX"]}]}}, ("rules", "metrics", 0, "jurisdictions", 0), "ISO"),
        ({"rules": {"metrics": [{"roles": []}]}}, ("rules", "metrics", 0, "roles"), "at least 1"),
        ({"dp": {"epsilon_per_round": 3, "lifetime_epsilon": 2, "delta": 1e-5}}, ("dp", "lifetime_epsilon"), "below"),
        ({"dp": {"epsilon_per_round": "3", "lifetime_epsilon": 50, "delta": 1e-5}}, ("dp", "epsilon_per_round"), "number is required"),
        ({"dp": {"epsilon_per_round": 3, "lifetime_epsilon": 50, "delta": 0}}, ("dp", "delta"), "greater than 0"),
        ({"dp": {"epsilon_per_round": 3, "lifetime_epsilon": float("inf"), "delta": 1e-5}}, ("dp", "lifetime_epsilon"), "finite"),
        ({"aggregation": {"min_sites": 0}}, ("aggregation", "min_sites"), "greater than or equal to 1"),
        ({"encryption": {"at_rest": "rot13"}}, ("encryption", "at_rest"), "permitted"),
        ({"description": ""}, ("description",), "at least 1"),
    ],
)  # fmt: skip
def test_policy_field_rules(overrides, loc, fragment):
    errors = errors_of(Policy, policy_dict(**overrides))
    assert fragment in errors[loc], errors


def test_destination_rule_matching_is_and_within_or_across():
    berlin = Site.parse_obj(site_dict())
    coord_nl = Site.parse_obj(coordinator_dict())
    coord_us = Site.parse_obj(coordinator_dict(region="us-east1", jurisdiction="US"))
    eu_coord = DestinationRule(roles=["coordinator"], jurisdictions=["EU"])
    assert eu_coord.matches(coord_nl)
    assert not eu_coord.matches(coord_us)  # jurisdiction fails
    assert not eu_coord.matches(berlin)  # role fails (DE is in the EU)
    assert DestinationRule(jurisdictions=["EEA"]).matches(berlin)
    assert DestinationRule(jurisdictions=["FR", "DE"]).matches(berlin)
    assert not DestinationRule(sites=["hospital-paris"]).matches(berlin)
    assert DestinationRule(providers=["gcp"], regions=["europe-west4"]).matches(coord_nl)
    assert not DestinationRule(providers=["gcp"], regions=["europe-west1"]).matches(coord_nl)
    assert eu_coord.describe() == "roles=coordinator, jurisdictions=EU"


def test_canonical_json_round_trip_and_digests():
    site = Site.parse_obj(site_dict())
    policy = Policy.parse_obj(policy_dict())
    text = canonical_json(policy)
    assert Site.parse_raw(canonical_json(site)) == site
    assert Policy.parse_raw(text) == policy
    assert json.loads(text) == json.loads(json.dumps(json.loads(text), sort_keys=True))
    assert (
        ", " not in text and ": " not in text and list(json.loads(text)) == sorted(json.loads(text))
    )
    assert policy_digest(policy) == hashlib.sha256(text.encode()).hexdigest()
    assert site_digest(site) == hashlib.sha256(canonical_json(site).encode()).hexdigest()
    # same content, different YAML spelling (int vs float epsilon, key order) -> same digest
    d = policy_dict()
    d["dp"] = {"delta": 1e-5, "lifetime_epsilon": 50.0, "epsilon_per_round": 3}
    assert policy_digest(Policy.parse_obj(d)) == policy_digest(policy)
    changed = copy.deepcopy(policy_dict())
    changed["dp"]["epsilon_per_round"] = 2.0
    assert policy_digest(Policy.parse_obj(changed)) != policy_digest(policy)


def test_models_are_immutable():
    site = Site.parse_obj(site_dict())
    with pytest.raises(TypeError):
        site.region = "us-east1"


def test_raw_data_or_local_model_leaving_needs_the_unsafe_override():
    """Issue #11 item 3: these classes never leave their site unless explicitly overridden."""
    leaving = {
        "raw_data": [{"sites": ["coordinator"]}],
        "local_model": [{"roles": ["coordinator"]}],
        "dp_update": [{"roles": ["coordinator"]}],
    }
    errors = errors_of(Policy, policy_dict(rules=leaving))
    assert errors == {
        ("rules",): "rules.raw_data[0] (sites=coordinator) lets raw_data leave the site; "
        "rules.local_model[0] (roles=coordinator) lets local_model leave the site: raw data and "
        "the local model never leave their site (only DP updates, summaries and metrics do). "
        "Remove the rule, or set unsafe_override.allow_leaving_site (with "
        "unsafe_override.reason) to do it anyway"
    }
    # an override covers only the classes it names
    partial = {"allow_leaving_site": ["local_model"], "reason": "audit"}
    errors = errors_of(Policy, policy_dict(rules=leaving, unsafe_override=partial))
    assert list(errors) == [("rules",)] and "rules.raw_data[0]" in errors[("rules",)]
    assert "local_model[0]" not in errors[("rules",)]
    both = {"allow_leaving_site": ["raw_data", "local_model"], "reason": "audit"}
    policy = Policy.parse_obj(policy_dict(rules=leaving, unsafe_override=both))
    assert policy.unsafe_override.allow_leaving_site == ["raw_data", "local_model"]
    # the override needs a reason and names only these two classes
    assert ("unsafe_override", "reason") in errors_of(
        Policy, policy_dict(unsafe_override={"allow_leaving_site": ["raw_data"], "reason": " "})
    )
    assert ("unsafe_override", "allow_leaving_site", 0) in errors_of(
        Policy, policy_dict(unsafe_override={"allow_leaving_site": ["dp_update"], "reason": "x"})
    )
