"""Pure contradiction checks between site and policy fields (issue #11 item 4), by hand."""

from __future__ import annotations

from components.common.manifest import generate_keypair
from components.domain.cloud_regions import region_country
from components.domain.consistency import (
    public_key_bytes,
    selector_matches_every_node,
    selectors_can_share_a_node,
    tolerates_every_taint,
)
from components.domain.models import Toleration


def test_selectors_share_a_node_unless_a_label_separates_them():
    site = "fedpipe.dev/site"
    assert not selectors_can_share_a_node({site: "a"}, {site: "b"})
    assert selectors_can_share_a_node({site: "a"}, {site: "a"})
    assert selectors_can_share_a_node({site: "a"}, {site: "a", "disk": "ssd"})  # superset
    assert selectors_can_share_a_node({"pool": "x"}, {site: "a"})  # disjoint keys
    assert not selectors_can_share_a_node({site: "a", "pool": "x"}, {"pool": "y", site: "a"})


def test_selectors_of_well_known_labels_only_match_every_node():
    assert selector_matches_every_node({"kubernetes.io/os": "linux"})
    assert selector_matches_every_node({"kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64"})
    assert not selector_matches_every_node({"kubernetes.io/os": "linux", "fedpipe.dev/site": "a"})


def test_only_a_keyless_exists_toleration_tolerates_every_taint():
    keyed = Toleration(key="fedpipe.dev/site", operator="Exists")
    equal = Toleration(key="fedpipe.dev/site", operator="Equal", value="a")
    assert tolerates_every_taint([keyed, equal]) is None
    assert tolerates_every_taint([equal, Toleration(operator="Exists")]) == 1


def test_known_cloud_regions_and_unknown_ones():
    assert region_country("gcp", "us-central1") == "US"
    assert region_country("gcp", "europe-west4") == "NL"
    assert region_country("aws", "eu-central-1") == "DE"
    assert region_country("azure", "westeurope") == "NL"
    assert region_country("gcp", "mars-north1") is None
    assert region_country("on-prem", "de-berlin") is None


def test_one_key_in_two_pem_texts_compares_equal():
    pem = generate_keypair()[1]
    assert public_key_bytes(pem) == public_key_bytes(pem.replace("\n", "\r\n"))
    assert public_key_bytes(pem) != public_key_bytes(generate_keypair()[1])
