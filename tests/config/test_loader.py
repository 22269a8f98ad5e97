"""load_federation on the checked-in example and on broken copies of it."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from pipelines.config.loader import ConfigError, federation_from_models, load_federation
from tests.support.paths import REPO


def copy_example(tmp_path: Path) -> tuple[Path, Path]:
    sites, policies = tmp_path / "sites", tmp_path / "policies"
    shutil.copytree(REPO / "sites", sites)
    shutil.copytree(REPO / "policies", policies)
    return sites, policies


def edit(path: Path, change: Callable[[dict[str, Any]], None]) -> None:
    doc = yaml.safe_load(path.read_text())
    change(doc)
    path.write_text(yaml.safe_dump(doc, sort_keys=False))


def load_errors(sites: Path, policies: Path) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_federation(sites, policies)
    assert str(info.value).splitlines()[1:] == info.value.errors
    return info.value.errors


def test_example_federation_loads():
    fed = load_federation(REPO / "sites", REPO / "policies")
    assert list(fed.sites) == ["clinic-boston", "hospital-berlin", "hospital-paris"]
    assert fed.coordinator.id == "coordinator"
    assert (fed.coordinator.provider, fed.coordinator.region) == ("gcp", "europe-west4")
    assert fed.coordinator.object_store.type == "gcs"
    assert {s.jurisdiction for s in fed.sites.values()} == {"DE", "FR", "US"}
    assert fed.policy_of("hospital-berlin").id == "eu-health"
    assert fed.policy_of("hospital-paris").id == "eu-health"
    assert fed.policy_of("clinic-boston").id == "us-health"
    assert fed.policy_of("coordinator").id == "coordinator"
    assert set(fed.governing) == {
        "clinic-boston",
        "coordinator",
        "hospital-berlin",
        "hospital-paris",
    }
    for policy in fed.policies.values():
        assert policy.dp.epsilon_per_round == 3.0 and policy.dp.lifetime_epsilon == 50.0
        assert policy.dp.delta == 1e-5 and policy.dp.allow_dp_off
        assert policy.aggregation.min_sites == 2
        assert policy.rules_for("raw_data") == [] and policy.rules_for("local_model") == []
    assert {s.data.contract for s in fed.sites.values()} == {"breast_cancer"}
    assert len({s.signing.public_key for s in fed.sites.values()}) == 3
    assert fed.files["site:hospital-berlin"].endswith("sites/hospital-berlin.yaml")
    with pytest.raises(KeyError, match="unknown site 'hospital-rome'"):
        fed.site("hospital-rome")


def test_three_errors_in_one_site_file_reported_together(tmp_path):
    sites, policies = copy_example(tmp_path)
    berlin = sites / "hospital-berlin.yaml"

    def break_it(doc):
        doc["jurisdicton"] = doc.pop("jurisdiction")  # misspelt
        del doc["region"]  # missing
        doc["placement"]["tolerations"] = "all"  # wrong type

    edit(berlin, break_it)
    errors = load_errors(sites, policies)
    assert errors == [
        f"{berlin}: region: field required",
        f"{berlin}: jurisdiction: field required",
        f"{berlin}: placement.tolerations: value is not a valid list",
        f"{berlin}: jurisdicton: unknown field (extra fields not permitted); "
        "did you mean 'jurisdiction'?",
    ]


def test_errors_of_several_files_and_cross_checks_come_together(tmp_path):
    sites, policies = copy_example(tmp_path)
    edit(sites / "hospital-paris.yaml", lambda d: d.update(policy="fr-health"))

    def share_berlins_bucket(doc):
        doc["object_store"]["bucket"] = "hospital-berlin-fl"
        for key in ("uri", "holdout_uri"):
            doc["data"][key] = doc["data"][key].replace("clinic-boston-fl", "hospital-berlin-fl")

    edit(sites / "clinic-boston.yaml", share_berlins_bucket)
    edit(policies / "us-health.yaml", lambda d: d["dp"].update(delta="tiny"))
    errors = load_errors(sites, policies)
    paris, berlin = sites / "hospital-paris.yaml", sites / "hospital-berlin.yaml"
    boston, us = sites / "clinic-boston.yaml", policies / "us-health.yaml"
    assert errors == [
        f"{us}: dp.delta: a number is required, got str 'tiny'",
        f"{berlin}: object_store.bucket: bucket 'hospital-berlin-fl' is also used in {boston}",
        f"{paris}: policy: unknown policy 'fr-health' (known: coordinator, eu-health)",
    ]  # boston names us-health, whose own error is already listed: not reported twice


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            lambda s, p: edit(s / "hospital-paris.yaml", lambda d: d.update(role="coordinator", data=None) or d.pop("data")),
            "role: more than one coordinator (coordinator, hospital-paris)",
        ),
        (
            lambda s, p: (s / "coordinator.yaml").unlink(),
            "role: no site has role coordinator",
        ),
        (
            lambda s, p: (s / "hospital-paris.yaml").rename(s / "hospital-lyon.yaml"),
            "hospital-lyon.yaml: id: 'hospital-paris' must equal the file name ('hospital-lyon')",
        ),
        (
            lambda s, p: edit(s / "hospital-paris.yaml", lambda d: d["object_store"].update(secret_name="hospital-berlin-object-store")),
            "object_store.secret_name: Secret name 'hospital-berlin-object-store' is also used in",
        ),
        (
            lambda s, p: edit(p / "eu-health.yaml", lambda d: d["rules"]["metrics"].append({"sites": ["hospital-rome"]})),
            "eu-health.yaml: rules.metrics[1].sites: unknown site 'hospital-rome'",
        ),
        (
            lambda s, p: edit(p / "us-health.yaml", lambda d: d["aggregation"].update(min_sites=4)),
            "us-health.yaml: aggregation.min_sites: 4 exceeds the 3 sites of the federation",
        ),
        (
            lambda s, p: edit(s / "hospital-paris.yaml", lambda d: d["data"].update(contract="digits")),
            "hospital-paris.yaml: data.contract: 'digits' differs from 'breast_cancer'",
        ),
        (
            lambda s, p: (s / "hospital-paris.yaml").write_text("id: [unclosed\n"),
            "hospital-paris.yaml: line 2, column 1:",
        ),
        (
            lambda s, p: (s / "hospital-paris.yaml").write_text("id: a\nid: b\n"),
            "hospital-paris.yaml: line 2, column 1: duplicate key 'id'",
        ),
        (
            lambda s, p: (s / "hospital-paris.yaml").write_text("- a\n- b\n"),
            "hospital-paris.yaml: (document): expected a mapping, got list",
        ),
        (
            lambda s, p: edit(s / "hospital-paris.yaml", lambda d: d["placement"].update(node_selector={"fedpipe.dev/site": "hospital-berlin"})),
            "hospital-paris.yaml: placement.node_selector: fedpipe.dev/site=hospital-berlin and hospital-berlin's fedpipe.dev/site=hospital-berlin (",
        ),
        (
            lambda s, p: (s / "hospital-paris.yaml").write_text("# nothing yet\n"),
            "hospital-paris.yaml: (document): the file is empty",
        ),
        (
            lambda s, p: shutil.rmtree(p),
            "policies: (directory): policy directory not found",
        ),
    ],
)  # fmt: skip
def test_cross_checks(tmp_path, change, expected):
    sites, policies = copy_example(tmp_path)
    change(sites, policies)
    errors = load_errors(sites, policies)
    assert any(expected in e for e in errors), errors


def test_federation_from_models_runs_the_same_checks():
    fed = load_federation(REPO / "sites", REPO / "policies")
    again = federation_from_models(
        fed.all_sites.values(), fed.policies.values(), fed.contracts.values()
    )
    assert again.sites == fed.sites and again.coordinator == fed.coordinator
    assert again.digest() == fed.digest()
    with pytest.raises(ConfigError, match="no site has role coordinator"):
        federation_from_models(fed.sites.values(), fed.policies.values())


def test_a_broken_coordinator_file_is_not_also_reported_as_missing(tmp_path):
    sites, policies = copy_example(tmp_path)
    edit(sites / "coordinator.yaml", lambda d: d.update(provider="on-prem"))
    errors = load_errors(sites, policies)
    assert errors == [
        f"{sites / 'coordinator.yaml'}: provider: a cloud deployment needs a cloud provider "
        "(gcp, aws, azure)"
    ]


def test_contradictory_config_is_refused_naming_file_and_field(tmp_path):
    """Issue #11 item 4: each of these loaded before; now every one is an error, all at once."""
    sites, policies = copy_example(tmp_path)
    edit(sites / "coordinator.yaml", lambda d: d.update(region="us-central1"))  # declared NL
    berlin = yaml.safe_load((sites / "hospital-berlin.yaml").read_text())
    edit(sites / "hospital-paris.yaml", lambda d: d.update(signing=berlin["signing"]))
    edit(sites / "hospital-berlin.yaml", lambda d: d["object_store"].update(secure=False))

    def everywhere(d: dict[str, Any]) -> None:
        d["placement"] = {
            "node_selector": {"kubernetes.io/os": "linux"},
            "tolerations": [{"operator": "Exists"}],
        }

    edit(sites / "clinic-boston.yaml", everywhere)
    errors = load_errors(sites, policies)
    assert errors == [
        f"{sites / 'coordinator.yaml'}: jurisdiction: 'NL' contradicts region 'us-central1': "
        "that gcp region is in US; declare jurisdiction US or pick a region in NL",
        f"{sites / 'clinic-boston.yaml'}: placement.node_selector: kubernetes.io/os=linux "
        "matches every node (labels every node carries), and placement.tolerations[0] "
        "(operator Exists, no key) tolerates every taint: clinic-boston's tasks could run on "
        "any site's nodes; select its own nodes, e.g. fedpipe.dev/site: clinic-boston",
        f"{sites / 'hospital-paris.yaml'}: signing.public_key: the same key as hospital-berlin "
        f"({sites / 'hospital-berlin.yaml'}); each site needs its own key pair (with one key a "
        "site can sign as the other)",
        f"{sites / 'hospital-berlin.yaml'}: object_store.secure: false, but policy eu-health "
        "requires encryption.in_transit tls; set object_store.secure: true (or a policy that "
        f"allows in_transit none) ({policies / 'eu-health.yaml'})",
    ]


def test_selectors_that_can_match_one_node_are_refused(tmp_path):
    sites, policies = copy_example(tmp_path)
    # paris adds a label to berlin's: a node labelled with both matches both sites
    edit(
        sites / "hospital-paris.yaml",
        lambda d: d["placement"].update(
            node_selector={"fedpipe.dev/site": "hospital-berlin", "disk": "ssd"}
        ),
    )
    (error,) = load_errors(sites, policies)
    assert error == (
        f"{sites / 'hospital-paris.yaml'}: placement.node_selector: disk=ssd, "
        "fedpipe.dev/site=hospital-berlin and hospital-berlin's fedpipe.dev/site=hospital-berlin "
        f"({sites / 'hospital-berlin.yaml'}) can match the same node (no label both set to "
        "different values): tasks of both sites could share nodes"
    )
    # a label the other site does not set at all does not separate them either
    edit(
        sites / "hospital-paris.yaml",
        lambda d: d["placement"].update(node_selector={"pool": "paris"}),
    )
    errors = load_errors(sites, policies)
    assert [e.split(": placement.node_selector: ")[1].split(" (")[0] for e in errors] == [
        "pool=paris and clinic-boston's fedpipe.dev/site=clinic-boston",
        "pool=paris and coordinator's fedpipe.dev/site=coordinator",
        "pool=paris and hospital-berlin's fedpipe.dev/site=hospital-berlin",
    ]


def test_a_site_naming_an_unknown_contract_is_reported(tmp_path):
    sites, policies = copy_example(tmp_path)
    edit(sites / "hospital-paris.yaml", lambda d: d["data"].update(contract="iris"))
    edit(sites / "hospital-berlin.yaml", lambda d: d["data"].update(contract="iris"))
    edit(sites / "clinic-boston.yaml", lambda d: d["data"].update(contract="iris"))
    errors = load_errors(sites, policies)
    assert any(
        "hospital-paris.yaml: data.contract: unknown data contract 'iris'" in e
        and "breast_cancer, diabetes, digits, wine" in e
        for e in errors
    ), errors


def test_contract_faults_come_with_the_other_errors_at_once(tmp_path):
    sites, policies = copy_example(tmp_path)
    edit(sites / "contracts" / "wine.yaml", lambda d: d["rows"].update(min_train=0))
    edit(sites / "contracts" / "digits.yaml", lambda d: d.update(name="digitz"))
    edit(sites / "hospital-paris.yaml", lambda d: d.update(jurisdicton="FR"))
    errors = load_errors(sites, policies)
    assert any("wine.yaml: rows.min_train:" in e for e in errors), errors
    assert any("digits.yaml: name: 'digitz' must equal the file name" in e for e in errors)
    assert any("hospital-paris.yaml: jurisdicton: unknown field" in e for e in errors)


def test_the_federation_carries_its_contract():
    fed = load_federation(REPO / "sites", REPO / "policies")
    assert fed.contract.name == "breast_cancer"
    assert set(fed.contracts) == {"breast_cancer", "diabetes", "digits", "wine"}
