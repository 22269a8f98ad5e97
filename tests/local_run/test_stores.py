"""Local stores for `fedpipe run --local`: real servers, buckets, keys, state mirror."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest
import yaml

from components.domain.models import Site
from pipelines.access.rules import access_rules
from pipelines.config.loader import ConfigError, load_federation
from pipelines.local_run.siteconf import write_local_config
from pipelines.local_run.stores import LocalStores, ensure_signing_keys
from tests.support.paths import REPO


@pytest.mark.integration
def test_servers_buckets_keys_and_state_survive_a_restart(tmp_path: Path) -> None:
    fed = load_federation(REPO / "sites", REPO / "policies")
    sites = fed.all_sites
    lock = {s: fed.policy_of(s).retention.object_lock for s in sites}
    secrets = tmp_path / "secrets"
    first = LocalStores()
    try:
        first.start(fed.sites, fed.coordinator, access_rules(fed))
        assert set(first.s3) == set(fed.sites) and first.gcs is not None
        first.write_credentials(secrets)
        # tasks get the identities' keys, never the administrator's
        site_key = (secrets / "hospital-berlin" / "s3_access_key").read_text()
        coord_key = (secrets / "hospital-berlin" / "coordinator-read" / "s3_access_key").read_text()
        assert site_key == first.keys["hospital-berlin"]["site:hospital-berlin"].access_key
        assert coord_key == first.keys["hospital-berlin"]["coordinator@hospital-berlin"].access_key
        assert first.s3["hospital-berlin"].access_key not in {site_key, coord_key}
        keys = ensure_signing_keys(secrets, list(fed.sites))
        first.create_buckets(sites, lock)
        first.create_buckets(sites, lock)  # idempotent
        berlin = fed.sites["hospital-berlin"]
        data = tmp_path / "train.csv"
        data.write_text("a,label\n1,0\n")
        first.put_file(berlin, "data/train.csv", data)
        from minio.error import S3Error

        from pipelines.localstack.servers import minio_client

        as_site = minio_client(
            first.s3["hospital-berlin"],
            site_key,
            (secrets / "hospital-berlin" / "s3_secret_key").read_text(),
        )
        assert as_site.get_object(berlin.object_store.bucket, "data/train.csv").read()
        as_coord = minio_client(
            first.s3["hospital-berlin"],
            coord_key,
            (secrets / "hospital-berlin" / "coordinator-read" / "s3_secret_key").read_text(),
        )
        with pytest.raises(S3Error, match="AccessDenied"):
            as_coord.get_object(berlin.object_store.bucket, "data/train.csv")
        coord = fed.coordinator
        first.gcs_client().bucket(coord.object_store.bucket).blob(
            "models/v1.npz"
        ).upload_from_string(b"model")
        env = first.env(secrets)
        assert env["STORAGE_EMULATOR_HOST"] == first.gcs.url
        assert "hospital-berlin" in env["FEDPIPE_ENDPOINT_OVERRIDES"]
        saved = first.save_state(sites, tmp_path / "state")
        assert saved == 2
        ports = first.endpoint_overrides()
    finally:
        first.stop()
    mode = stat.S_IMODE((secrets / "hospital-berlin" / "signing_key").stat().st_mode)
    assert mode == 0o600
    assert ensure_signing_keys(secrets, list(fed.sites)) == keys  # kept, not regenerated

    second = LocalStores()
    try:
        second.start(fed.sites, fed.coordinator)
        second.create_buckets(sites, lock)
        assert second.restore_state(sites, tmp_path / "state") == 2
        assert second.get_bytes(berlin, "data/train.csv") == b"a,label\n1,0\n"
        assert second.get_bytes(coord, "models/v1.npz") == b"model"
        assert second.get_bytes(berlin, "nope") is None
        assert second.list_keys(berlin, "data/") == ["data/train.csv"]
    finally:
        second.stop()

    sdir, pdir = write_local_config(
        sites,
        REPO / "policies",
        tmp_path / "cfg",
        endpoints=ports,
        public_keys=keys,
        dataset="digits",
        contracts_dir=REPO / "sites" / "contracts",
    )
    # explicit endpoints turn TLS off, which the example policies (in_transit tls) refuse
    with pytest.raises(ConfigError, match="object_store.secure: false, but policy eu-health"):
        load_federation(sdir, pdir)
    b = Site.parse_obj(yaml.safe_load((sdir / "hospital-berlin.yaml").read_text()))
    assert b.object_store.endpoint == ports["hospital-berlin"] and b.object_store.secure is False
    assert b.signing is not None and b.signing.public_key == keys["hospital-berlin"]
    assert b.data is not None and b.data.contract == "digits"
    assert (sdir / "contracts" / "digits.yaml").is_file()
    assert "127.0.0.1" not in (REPO / "sites" / "hospital-berlin.yaml").read_text()


def test_configured_endpoints_all_or_nothing() -> None:
    from pipelines.local_run.stores import configured_endpoints

    fed = load_federation(REPO / "sites", REPO / "policies")
    assert configured_endpoints(fed.sites, fed.coordinator, {}) is None
    every = {s: f"127.0.0.1:{9000 + i}" for i, s in enumerate(fed.sites)}
    env = {"FEDPIPE_ENDPOINT_OVERRIDES": json.dumps(every), "STORAGE_EMULATOR_HOST": "http://x:1"}
    assert configured_endpoints(fed.sites, fed.coordinator, env) == (every, "http://x:1")
    partial = {"FEDPIPE_ENDPOINT_OVERRIDES": json.dumps({"hospital-berlin": "h:1"})}
    with pytest.raises(ValueError, match="clinic-boston") as info:
        configured_endpoints(fed.sites, fed.coordinator, partial)
    assert "STORAGE_EMULATOR_HOST" in str(info.value)


@pytest.mark.integration
def test_connect_uses_running_servers_with_site_credentials(
    s3_server, gcs_server, monkeypatch: pytest.MonkeyPatch
) -> None:
    fed = load_federation(REPO / "sites", REPO / "policies")
    monkeypatch.setenv("FEDPIPE_S3_ACCESS_KEY", s3_server.access_key)
    monkeypatch.setenv("FEDPIPE_S3_SECRET_KEY", s3_server.secret_key)
    stores = LocalStores()
    stores.connect({s: s3_server.endpoint for s in fed.sites}, gcs_server.url)
    stores.create_buckets(fed.all_sites, {})
    berlin = fed.sites["hospital-berlin"]
    assert stores.minio("hospital-berlin").bucket_exists(berlin.object_store.bucket)
    assert stores.external and stores.env(Path("/s"))["STORAGE_EMULATOR_HOST"] == gcs_server.url
    stores.stop()  # not ours: the fixture's servers keep running
    assert s3_server.proc is not None and s3_server.proc.poll() is None


@pytest.mark.integration
def test_a_dead_store_keeps_its_previous_mirror_and_the_others_are_saved(tmp_path: Path) -> None:
    import os
    import signal

    fed = load_federation(REPO / "sites", REPO / "policies")
    sites = fed.all_sites
    stores = LocalStores()
    state = tmp_path / "state"
    try:
        stores.start(fed.sites, fed.coordinator, data_root=tmp_path / "data")
        assert stores.fresh == set(fed.sites)
        stores.create_buckets(sites, {s: False for s in sites})
        paris, berlin = fed.sites["hospital-paris"], fed.sites["hospital-berlin"]
        one = tmp_path / "one.json"
        one.write_text("1")
        stores.put_file(paris, "ledger/hospital-paris/r/round-0001/attempt-0001.json", one)
        stores.put_file(berlin, "ledger/hospital-berlin/r/round-0001/attempt-0001.json", one)
        assert stores.save_state(sites, state) == 2
        stores.put_file(berlin, "ledger/hospital-berlin/r/round-0002/attempt-0001.json", one)
        dead = stores.s3["hospital-paris"]
        os.killpg(dead.proc.pid, signal.SIGKILL)
        dead.proc.wait(10)
        assert stores.save_state(sites, state) == 2  # berlin's two; paris did not answer
        assert list(stores.unsaved) == ["hospital-paris"]
        assert f"s3://{dead.endpoint}" in stores.unsaved["hospital-paris"]
    finally:
        stores.stop()
    mirrored = sorted(p.relative_to(state).as_posix() for p in state.rglob("*.json"))
    assert mirrored == [
        "s3/hospital-berlin-fl/ledger/hospital-berlin/r/round-0001/attempt-0001.json",
        "s3/hospital-berlin-fl/ledger/hospital-berlin/r/round-0002/attempt-0001.json",
        "s3/hospital-paris-fl/ledger/hospital-paris/r/round-0001/attempt-0001.json",
    ]
    assert sorted(p.name for p in state.iterdir()) == ["gcs", "s3"]  # no .tmp / .old left
    # the dead store's data folder still holds what it acknowledged
    again = LocalStores()
    try:
        again.start(
            {"hospital-paris": fed.sites["hospital-paris"]},
            fed.coordinator,
            data_root=tmp_path / "data",
        )
        assert again.fresh == set()
        assert again.list_keys(fed.sites["hospital-paris"], "ledger/") == [
            "ledger/hospital-paris/r/round-0001/attempt-0001.json"
        ]
    finally:
        again.stop()
