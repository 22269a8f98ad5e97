"""Placement helpers: assert on the compiled Kubernetes platform spec (no cluster)."""

from pathlib import Path

import pytest

from pipelines.placement import (
    JURISDICTION_LABEL,
    ROLE_LABEL,
    SITE_LABEL,
    label_placement,
    place_coordinator_task,
    place_on_nodes,
    place_site_task,
    rewrite_registry,
    use_site_credentials,
    use_site_registry,
    use_sites_read_credentials,
)
from pipelines.placement.registry import split_registry
from tests.support.example_federation import compile_one_task, example_federation

FED = example_federation()
BERLIN = FED.sites["hospital-berlin"]
BOSTON = FED.sites["clinic-boston"]
COORD = FED.coordinator


def test_node_selector_and_tolerations(tmp_path: Path):
    _, _, k8s = compile_one_task(tmp_path, lambda t: place_on_nodes(t, BERLIN))
    assert k8s["nodeSelector"] == {"labels": {"fedpipe.dev/site": "hospital-berlin"}}
    assert k8s["tolerations"] == [
        {
            "key": "fedpipe.dev/site",
            "operator": "Equal",
            "value": "hospital-berlin",
            "effect": "NoSchedule",
        }
    ]


def test_several_node_labels_in_sorted_order(tmp_path: Path):
    placement = BERLIN.placement.copy(
        update={"node_selector": {"zone": "b", "fedpipe.dev/site": "hospital-berlin"}}
    )
    site = BERLIN.copy(update={"placement": placement})
    _, _, k8s = compile_one_task(tmp_path, lambda t: place_on_nodes(t, site))
    assert list(k8s["nodeSelector"]["labels"]) == ["fedpipe.dev/site", "zone"]


def test_pod_labels_name_site_role_and_jurisdiction(tmp_path: Path):
    _, _, k8s = compile_one_task(tmp_path, lambda t: label_placement(t, BOSTON))
    assert k8s["podMetadata"]["labels"] == {
        SITE_LABEL: "clinic-boston",
        ROLE_LABEL: "site",
        JURISDICTION_LABEL: "US",
    }


def test_credentials_reference_the_site_secret_by_name_only(tmp_path: Path):
    _, _, k8s = compile_one_task(tmp_path, lambda t: use_site_credentials(t, BERLIN))
    (secret,) = k8s["secretAsEnv"]
    assert secret["secretNameParameter"] == {
        "runtimeValue": {"constant": "hospital-berlin-object-store"}
    }
    assert secret["keyToEnv"] == [
        {"secretKey": "access-key", "envVar": "FEDPIPE_S3_ACCESS_KEY__HOSPITAL_BERLIN"},
        {"secretKey": "secret-key", "envVar": "FEDPIPE_S3_SECRET_KEY__HOSPITAL_BERLIN"},
    ]


def test_signing_key_only_when_asked(tmp_path: Path):
    _, _, k8s = compile_one_task(tmp_path, lambda t: use_site_credentials(t, BERLIN, signing=True))
    env = {m["secretKey"]: m["envVar"] for m in k8s["secretAsEnv"][0]["keyToEnv"]}
    assert env["signing-key"] == "FEDPIPE_SIGNING_KEY__HOSPITAL_BERLIN"


def test_aggregate_reads_every_site_without_signing_keys(tmp_path: Path):
    sites = list(FED.sites.values())[::-1]
    _, _, k8s = compile_one_task(tmp_path, lambda t: use_sites_read_credentials(t, sites))
    names = [s["secretNameParameter"]["runtimeValue"]["constant"] for s in k8s["secretAsEnv"]]
    # the coordinator's read-only Secret per site, never the site's own (data) Secret
    assert names == sorted(f"{s.object_store.secret_name}-coordinator-read" for s in sites)
    assert not {s.object_store.secret_name for s in sites} & set(names)
    keys = {m["secretKey"] for s in k8s["secretAsEnv"] for m in s["keyToEnv"]}
    assert keys == {"access-key", "secret-key"}
    envs = {m["envVar"] for s in k8s["secretAsEnv"] for m in s["keyToEnv"]}
    assert "FEDPIPE_S3_ACCESS_KEY__CLINIC_BOSTON" in envs


@pytest.mark.parametrize(
    ("image", "registry", "expected"),
    [
        (
            "ghcr.io/fedpipe/fedpipe:0.1.0",
            "registry.example.org/mirror",
            "registry.example.org/mirror/fedpipe/fedpipe:0.1.0",
        ),
        ("python:3.11", "reg.local:5000", "reg.local:5000/python:3.11"),
        ("localhost/fedpipe@sha256:ab", "reg.example/", "reg.example/fedpipe@sha256:ab"),
        ("library/python:3.11", "reg.example", "reg.example/library/python:3.11"),
    ],
)
def test_rewrite_registry(image: str, registry: str, expected: str):
    assert rewrite_registry(image, registry) == expected


def test_split_registry_implicit_docker_hub():
    assert split_registry("fedpipe/fedpipe:1") == (None, "fedpipe/fedpipe:1")


def test_rewrite_registry_refuses_a_scheme():
    with pytest.raises(ValueError, match="without a scheme"):
        rewrite_registry("python:3.11", "https://reg.example")


def test_site_registry_override_rewrites_that_task_image(tmp_path: Path):
    site = BERLIN.copy(update={"image_registry": "registry.example.org/mirror"})
    _, executor, _ = compile_one_task(tmp_path, lambda t: use_site_registry(t, site))
    assert executor["container"]["image"] == "registry.example.org/mirror/fedpipe/fedpipe:0.1.0"


def test_no_registry_keeps_the_image(tmp_path: Path):
    _, executor, _ = compile_one_task(tmp_path, lambda t: use_site_registry(t, BERLIN))
    assert executor["container"]["image"] == "ghcr.io/fedpipe/fedpipe:0.1.0"


def test_site_task_composition(tmp_path: Path):
    _, _, k8s = compile_one_task(tmp_path, lambda t: place_site_task(t, BOSTON, signing=True))
    assert k8s["nodeSelector"]["labels"] == BOSTON.placement.node_selector
    assert k8s["podMetadata"]["labels"][SITE_LABEL] == "clinic-boston"
    assert len(k8s["secretAsEnv"][0]["keyToEnv"]) == 3


def test_coordinator_task_goes_to_coordinator_nodes(tmp_path: Path):
    _, _, k8s = compile_one_task(tmp_path, lambda t: place_coordinator_task(t, COORD))
    assert k8s["nodeSelector"]["labels"] == {"fedpipe.dev/site": "coordinator"}
    assert k8s["podMetadata"]["labels"][ROLE_LABEL] == "coordinator"
    assert "secretAsEnv" not in k8s
