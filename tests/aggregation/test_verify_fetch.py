"""Collecting a round's updates from real buckets (S3-compatible server): residency gate,
fetch with the size limit, verification; every site ends verified, abstained or rejected."""

from __future__ import annotations

import numpy as np
import pytest

from components.aggregation.collect import collect_updates
from components.aggregation.fetch import fetch_update
from components.aggregation.verify import UpdateRejected, model_spec, size_limit
from components.common.manifest import generate_keypair, update_object_key
from components.common.object_store import site_minio_client, split_endpoint
from components.domain.models import Policy
from tests.support.federation import (
    abstain,
    constant_update,
    export,
    global_tensors,
    make_coordinator,
    make_policy,
    new_site,
    write_ref,
)

pytestmark = pytest.mark.integration

RUN = "run-fetch"
ROUND = 3
SPEC = model_spec(global_tensors())


@pytest.fixture()
def s3_secrets(monkeypatch, s3_server):
    monkeypatch.setenv("FEDPIPE_S3_ACCESS_KEY", s3_server.access_key)
    monkeypatch.setenv("FEDPIPE_S3_SECRET_KEY", s3_server.secret_key)
    monkeypatch.delenv("FEDPIPE_ENDPOINT_OVERRIDES", raising=False)


def test_split_endpoint():
    assert split_endpoint("minio:9000", True) == ("minio:9000", True)
    assert split_endpoint("http://127.0.0.1:9000/", True) == ("127.0.0.1:9000", False)
    assert split_endpoint("https://m:443", False) == ("m:443", True)


def test_endpoint_override_reaches_the_local_server(monkeypatch, minio, s3_server, s3_secrets):
    kit = new_site("hospital-o", endpoint="minio.hospital-o.svc:9000", secure=True)
    # an override (local runs) is plain HTTP even though the spec says TLS
    monkeypatch.setenv("FEDPIPE_ENDPOINT_OVERRIDES", f'{{"hospital-o": "{s3_server.endpoint}"}}')
    minio.make_bucket(kit.site.object_store.bucket)
    client = site_minio_client(kit.site)
    assert client.bucket_exists(kit.site.object_store.bucket)


def test_fetch_refuses_oversize_on_stat_and_missing_objects(minio, s3_server, tmp_path):
    kit = new_site("hospital-f", endpoint=s3_server.endpoint)
    export(minio, kit, constant_update(0.5), tmp_path / "u", run_id=RUN, round_index=ROUND)
    bucket = kit.site.object_store.bucket
    key = update_object_key(RUN, ROUND, kit.id)
    raw = fetch_update(minio, site_id=kit.id, bucket=bucket, key=key, max_bytes=10**6)
    size = len(raw.npz_bytes)
    with pytest.raises(UpdateRejected) as info:
        fetch_update(minio, site_id=kit.id, bucket=bucket, key=key, max_bytes=size - 1)
    assert info.value.reason == (
        f"oversize: s3://{bucket}/{key}.npz is {size} bytes > limit {size - 1}"
    )
    with pytest.raises(UpdateRejected, match="not found"):
        fetch_update(minio, site_id=kit.id, bucket=bucket, key=key + "-x", max_bytes=10**6)


def test_every_bad_update_is_named_and_the_good_ones_pass(minio, s3_server, s3_secrets, tmp_path):
    endpoint = s3_server.endpoint
    kits = {
        name: new_site(name, endpoint=endpoint)
        for name in (
            "good-a",
            "good-b",
            "forged",
            "replay-round",
            "replay-run",
            "nan",
            "shape",
            "oversize",
            "abstains",
            "us-only",
            "missing",
            "foreign-ref",
            "protected",
        )
    }
    kits["us-only"].policy = make_policy(
        "us-health", dp_update=[{"roles": ["coordinator"], "jurisdictions": ["US"]}]
    )
    kits["us-only"].site = kits["us-only"].site.copy(update={"policy": "us-health"})
    protected = make_policy("eu-secagg").dict()
    protected["aggregation"]["protection"] = "secagg"
    kits["protected"].policy = Policy.parse_obj(protected)
    kits["protected"].site = kits["protected"].site.copy(update={"policy": "eu-secagg"})
    folders: dict[str, str] = {}

    def ex(name: str, tensors=None, **kwargs) -> None:
        folders[name] = export(
            minio,
            kits[name],
            constant_update(0.5) if tensors is None else tensors,
            tmp_path / name,
            run_id=kwargs.pop("run_id", RUN),
            round_index=kwargs.pop("round_index", ROUND),
            **kwargs,
        )

    ex("good-a")
    ex("good-b", constant_update(-0.25))
    ex("forged", signing_pem=generate_keypair()[0])
    ex("replay-round", round_index=ROUND - 1, key_round=ROUND)  # old update copied to this key
    ex("replay-run", run_id="run-earlier", key_run=RUN)
    nan = constant_update(0.5)
    nan["hidden/bias"][0] = np.nan
    ex("nan", nan)
    shape = constant_update(0.5)
    shape["output/kernel"] = np.zeros((2, 3), np.float32)
    ex("shape", shape)
    big = constant_update(0.5)
    big["hidden/kernel"] = np.zeros((400, 300), np.float32)  # 480 kB > limit (~70 kB)
    ex("oversize", big)
    folders["abstains"] = abstain(kits["abstains"], tmp_path / "abstains", "validation failed")
    ex("us-only")
    minio.make_bucket(kits["missing"].site.object_store.bucket)  # bucket, but no update
    folders["missing"] = write_ref(
        tmp_path / "missing",
        {
            "status": "exported",
            "site_id": "missing",
            "bucket": kits["missing"].site.object_store.bucket,
            "key": update_object_key(RUN, ROUND, "missing"),
            "manifest": {},
            "reason": None,
        },
    )
    ex("foreign-ref", key_round=ROUND + 1)  # stored under another key; ref.json points there
    ex("protected")  # a clear update from a site whose policy asks for secure aggregation

    collected = collect_updates(
        folders,
        sites={n: k.site for n, k in kits.items()},
        policies={n: k.policy for n, k in kits.items()},
        coordinator=make_coordinator("coordinator-models"),
        run_id=RUN,
        round_index=ROUND,
        spec=SPEC,
        max_bytes=size_limit(SPEC),
        client_for=site_minio_client,
        global_version=ROUND - 1,
    )
    assert sorted(collected.verified) == ["good-a", "good-b"]
    np.testing.assert_array_equal(
        collected.verified["good-b"].tensors["output/bias"], np.full(2, -0.25, np.float32)
    )
    assert collected.abstained == {"abstains": "validation failed"}
    assert collected.residency == {
        "good-a": "eu-health rules.dp_update[0]",
        "good-b": "eu-health rules.dp_update[0]",
    }
    r = collected.rejected
    assert sorted(r) == sorted(set(kits) - {"good-a", "good-b", "abstains"})
    assert "signature does not verify" in r["forged"]
    assert f"replay: manifest is for run '{RUN}' round {ROUND - 1}" in r["replay-round"]
    assert "replay: manifest is for run 'run-earlier'" in r["replay-run"]
    assert "'hidden/bias' has 1 non-finite value(s)" in r["nan"]
    assert "'output/kernel' has shape (2, 3), global model has (3, 2)" in r["shape"]
    assert r["oversize"].startswith("oversize: s3://")
    assert r["us-only"].startswith("residency: policy us-health")
    assert "not found (NoSuchKey)" in r["missing"]
    assert "ref.json names key" in r["foreign-ref"]
    assert r["protected"].startswith("protection: policy eu-secagg asks aggregation.protection")


def test_update_for_an_unknown_site_is_a_config_error(tmp_path):
    with pytest.raises(ValueError, match=r"\['ghost'\]"):
        collect_updates(
            {"ghost": str(tmp_path)},
            sites={},
            policies={},
            coordinator=make_coordinator("coordinator-models"),
            run_id=RUN,
            round_index=ROUND,
            spec=SPEC,
            max_bytes=size_limit(SPEC),
            client_for=site_minio_client,
            global_version=ROUND - 1,
        )
