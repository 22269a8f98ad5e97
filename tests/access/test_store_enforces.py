"""The generated access rules, enforced by a real S3 server (SeaweedFS on 127.0.0.1).

Two sites' buckets on one server, each with its site identity and the coordinator's
read-only identity, as `access_rules` generates them from the example policies."""

from __future__ import annotations

import datetime as dt
import io
import json
import time
from pathlib import Path

import pytest

from pipelines.access.rules import (
    KeyPair,
    access_rules,
    coordinator_identity,
    seaweedfs_bucket_policy,
    seaweedfs_identities,
    site_identity,
)
from pipelines.config.loader import load_federation
from pipelines.localstack.servers import S3Server, minio_client
from tests.support.policies import without_metrics

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
SITES = ("hospital-berlin", "hospital-paris")


def _keys() -> dict[str, KeyPair]:
    out = {}
    for sid in SITES:
        out[site_identity(sid)] = KeyPair(f"S{sid[-5:]}".upper(), f"site-secret-{sid}")
        out[coordinator_identity(sid)] = KeyPair(f"C{sid[-5:]}".upper(), f"coord-secret-{sid}")
    return out


def _identities(fed, keys):
    rules = access_rules(fed)
    return [i for sid in SITES for i in seaweedfs_identities(rules[sid], keys)]


@pytest.fixture(scope="module")
def store():
    fed = load_federation(REPO / "sites", REPO / "policies")
    keys = _keys()
    server = S3Server(identities=_identities(fed, keys))
    server.start()
    admin = minio_client(server)
    rules = access_rules(fed)
    for sid in SITES:
        bucket = rules[sid].bucket
        admin.make_bucket(bucket, object_lock=True)
        admin.set_bucket_policy(bucket, json.dumps(seaweedfs_bucket_policy(rules[sid])))
        for key in (
            "data/train.csv",
            "local-models/r/m.npz",
            "updates/run/round-0001/x.npz",
            "metrics/run/round-0001.json",
            "validation/run.json",
            "ledger/x/run/round-0001/attempt-0001.json",
            "he/context.secret",
        ):
            admin.put_object(bucket, key, io.BytesIO(b"content"), 7)
    try:
        yield server, fed, keys
    finally:
        server.stop()


def _as(server, keys, name):
    pair = keys[name]
    return minio_client(server, pair.access_key, pair.secret_key)


def _status(call) -> int:
    from minio.error import S3Error

    try:
        result = call()
        if hasattr(result, "read"):
            result.read()
            result.close()
            result.release_conn()
        return 200
    except S3Error as exc:
        return exc.response.status


def test_a_site_reaches_its_own_bucket_only(store) -> None:
    server, _, keys = store
    berlin = _as(server, keys, site_identity("hospital-berlin"))
    assert _status(lambda: berlin.get_object("hospital-berlin-fl", "data/train.csv")) == 200
    put = lambda bucket: berlin.put_object(bucket, "updates/new", io.BytesIO(b"x"), 1)  # noqa: E731
    assert _status(lambda: put("hospital-berlin-fl")) == 200
    assert _status(lambda: berlin.get_object("hospital-paris-fl", "data/train.csv")) == 403
    assert (
        _status(lambda: berlin.get_object("hospital-paris-fl", "updates/run/round-0001/x.npz"))
        == 403
    )
    assert _status(lambda: put("hospital-paris-fl")) == 403
    assert _status(lambda: list(berlin.list_objects("hospital-paris-fl", recursive=True))) == 403


def test_the_site_can_lock_what_it_exports(store) -> None:
    from minio.commonconfig import COMPLIANCE
    from minio.retention import Retention

    server, _, keys = store
    paris = _as(server, keys, site_identity("hospital-paris"))
    written = paris.put_object(
        "hospital-paris-fl", "updates/run/round-0002/p.npz", io.BytesIO(b"u"), 1
    )
    until = dt.datetime.now(dt.UTC).replace(microsecond=0) + dt.timedelta(days=1)
    paris.set_object_retention(
        "hospital-paris-fl",
        written.object_name,
        Retention(COMPLIANCE, until),
        version_id=written.version_id,
    )
    assert paris.get_object_lock_config("hospital-paris-fl") is not None


def test_the_coordinator_reads_only_what_the_policy_sends_it(store) -> None:
    server, _, keys = store
    coord = _as(server, keys, coordinator_identity("hospital-berlin"))
    bucket = "hospital-berlin-fl"
    for key in (
        "updates/run/round-0001/x.npz",
        "metrics/run/round-0001.json",
        "validation/run.json",
    ):
        assert _status(lambda key=key: coord.get_object(bucket, key)) == 200, key
        assert _status(lambda key=key: coord.stat_object(bucket, key)) == 200, key
    for key in (
        "data/train.csv",
        "local-models/r/m.npz",
        "ledger/x/run/round-0001/attempt-0001.json",
    ):
        assert _status(lambda key=key: coord.get_object(bucket, key)) == 403, key
        assert _status(lambda key=key: coord.stat_object(bucket, key)) == 403, key
    for key in ("updates/run/round-0001/y.npz", "data/new.csv", "metrics/m.json"):
        assert (
            _status(lambda key=key: coord.put_object(bucket, key, io.BytesIO(b"x"), 1)) == 403
        ), key
    assert _status(lambda: coord.remove_object(bucket, "updates/run/round-0001/x.npz")) == 403
    assert _status(lambda: list(coord.list_objects(bucket, prefix="data/", recursive=True))) == 403
    # and nothing of the other site's bucket
    assert (
        _status(lambda: coord.get_object("hospital-paris-fl", "updates/run/round-0001/x.npz"))
        == 403
    )


def test_nobody_deletes_under_locked_prefixes(store) -> None:
    server, _, keys = store
    bucket = "hospital-berlin-fl"
    admin = minio_client(server)
    site = _as(server, keys, site_identity("hospital-berlin"))
    for client in (site, admin):
        assert (
            _status(
                lambda client=client: client.remove_object(
                    bucket, "ledger/x/run/round-0001/attempt-0001.json"
                )
            )
            == 403
        )
        assert (
            _status(
                lambda client=client: client.remove_object(bucket, "updates/run/round-0001/x.npz")
            )
            == 403
        )
    names = {o.object_name for o in admin.list_objects(bucket, recursive=True)}
    assert {"ledger/x/run/round-0001/attempt-0001.json", "updates/run/round-0001/x.npz"} <= names
    # outside the locked prefixes the site manages its own objects
    site.put_object(bucket, "data/scratch.csv", io.BytesIO(b"x"), 1)
    assert _status(lambda: site.remove_object(bucket, "data/scratch.csv")) == 200


def test_regenerated_rules_turn_the_metrics_read_into_403(store) -> None:
    server, fed, keys = store
    coord = _as(server, keys, coordinator_identity("hospital-berlin"))
    key = "metrics/run/round-0001.json"
    assert _status(lambda: coord.get_object("hospital-berlin-fl", key)) == 200
    server.set_identities(_identities(without_metrics(fed, "eu-health"), keys))
    # SeaweedFS reloads its identities asynchronously: poll for the change, bounded.
    deadline = time.monotonic() + 30
    while _status(lambda: coord.get_object("hospital-berlin-fl", key)) != 403:
        assert time.monotonic() < deadline, "the metrics read was still allowed after 30 s"
        time.sleep(0.1)
    assert (
        _status(lambda: coord.get_object("hospital-berlin-fl", "updates/run/round-0001/x.npz"))
        == 200
    )
    server.set_identities(_identities(fed, keys))  # back, for the other tests of this module
    deadline = time.monotonic() + 30
    while _status(lambda: coord.get_object("hospital-berlin-fl", key)) != 200:
        assert time.monotonic() < deadline
        time.sleep(0.1)


def test_the_coordinator_never_reads_a_site_s_ckks_secret_context(store) -> None:
    """protection he: the sites' secret key lives under he/, which no coordinator identity
    may read (get or stat), while the site itself can."""
    server, _, keys = store
    for sid in SITES:
        bucket = f"{sid}-fl"
        coord = _as(server, keys, coordinator_identity(sid))
        assert _status(lambda c=coord, b=bucket: c.get_object(b, "he/context.secret")) == 403
        assert _status(lambda c=coord, b=bucket: c.stat_object(b, "he/context.secret")) == 403
        site = _as(server, keys, site_identity(sid))
        assert _status(lambda c=site, b=bucket: c.get_object(b, "he/context.secret")) == 200
