"""On the compiled (checked-in) pipeline: no coordinator task holds a site's data key."""

from __future__ import annotations

import yaml

from pipelines.config.loader import load_federation
from pipelines.placement.labels import ROLE_LABEL, SITE_LABEL
from tests.support.paths import REPO

GOLDEN = REPO / "pipelines" / "compiled" / "federated-training.yaml"


def _executors() -> dict[str, dict]:
    docs = [d for d in yaml.safe_load_all(GOLDEN.read_text()) if d]
    return docs[1]["platforms"]["kubernetes"]["deploymentSpec"]["executors"]


def _secret_names(config: dict) -> list[str]:
    mounts = [*config.get("secretAsEnv", []), *config.get("secretAsVolume", [])]
    return [
        m.get("secretName") or m["secretNameParameter"]["runtimeValue"]["constant"] for m in mounts
    ]


def test_no_coordinator_task_references_a_site_data_key() -> None:
    fed = load_federation(REPO / "sites", REPO / "policies")
    data_secrets = {s.object_store.secret_name for s in fed.sites.values()}
    read_only = {f"{name}-coordinator-read" for name in data_secrets}
    executors = _executors()
    coordinator = {
        label: config
        for label, config in executors.items()
        if config.get("podMetadata", {}).get("labels", {}).get(ROLE_LABEL) == "coordinator"
    }
    assert coordinator  # initialize, aggregate per round, report
    own = fed.coordinator.object_store.secret_name  # its audit-chain signing key only
    seen: set[str] = set()
    for label, config in coordinator.items():
        names = _secret_names(config)
        assert not data_secrets & set(names), f"{label} references a site's data Secret"
        assert set(names) <= read_only | {own}, label
        for mount in config.get("secretAsEnv", []):
            keys = {k["secretKey"] for k in mount["keyToEnv"]}
            if mount.get("secretName") == own:
                # the coordinator's chain: initialize, each aggregate and report append to it
                signers = ("initialize", "aggregate", "report")
                assert keys == {"signing-key"} and any(t in label for t in signers), label
            else:
                assert keys <= {"access-key", "secret-key"}, label  # no site's signing key
        seen |= set(names) - {own}
    assert seen == read_only  # aggregate reads every site, through its read-only identity


def test_site_tasks_reference_only_their_own_site_secret() -> None:
    fed = load_federation(REPO / "sites", REPO / "policies")
    for label, config in _executors().items():
        labels = config.get("podMetadata", {}).get("labels", {})
        if labels.get(ROLE_LABEL) != "site":
            continue
        site = fed.sites[labels[SITE_LABEL]]
        assert set(_secret_names(config)) <= {site.object_store.secret_name}, label
