"""Publishing global model versions to the GCS emulator: create-only versions, a latest pointer
under a generation precondition, concurrent coordinators, resume reads."""

from __future__ import annotations

import json
import threading

import pytest

from components.aggregation.publish import (
    PARENT_KEY,
    WRITER_KEY,
    PublishConflictError,
    PublishError,
    _create,
    commit_publish,
    latest_key,
    load_latest,
    plan_publish,
    publish_version,
    read_latest,
)
from components.common.artifact_files import json_bytes
from components.common.tensors import dump_tensors
from components.domain.canonical import sha256_hex
from tests.support.federation import constant_update, unique

pytestmark = pytest.mark.integration


@pytest.fixture()
def bucket(gcs):
    return gcs.create_bucket(unique("coord"))


def model_bytes(value: float) -> bytes:
    return dump_tensors(constant_update(value))


def sha(value: float) -> str:
    return sha256_hex(model_bytes(value))


def publish(bucket, run: str, version: int, value: float, **meta):
    return publish_version(
        bucket,
        run_id=run,
        version=version,
        parent_version=version - 1,
        model_bytes=model_bytes(value),
        optimizer_bytes=dump_tensors({"m": constant_update(value)["output/bias"]}),
        meta={"version": version, "writer_value": value, **meta},
    )


def object_names(bucket) -> list[str]:
    return sorted(b.name for b in bucket.list_blobs())


def test_versions_and_latest_pointer(bucket):
    assert read_latest(bucket, "r1") is None
    assert load_latest(bucket, "r1") is None
    first = publish(bucket, "r1", 1, 0.1, contributors=["a", "b"])
    second = publish(bucket, "r1", 2, 0.2)
    assert first.uri == f"gs://{bucket.name}/models/r1/v1"
    assert object_names(bucket) == [
        "models/r1/latest.json",
        "models/r1/v1/meta.json",
        "models/r1/v1/model.npz",
        "models/r1/v1/optimizer.npz",
        "models/r1/v2/meta.json",
        "models/r1/v2/model.npz",
        "models/r1/v2/optimizer.npz",
    ]
    pointer = read_latest(bucket, "r1")
    assert (pointer.version, pointer.prefix) == (2, "models/r1/v2")
    assert pointer.body["parent"] == 1
    assert pointer.generation == second.latest_generation
    assert pointer.model_sha256 == sha256_hex(model_bytes(0.2))
    loaded = load_latest(bucket, "r1")
    assert loaded.model_bytes == model_bytes(0.2)
    assert loaded.meta == {
        "version": 2,
        "writer_value": 0.2,
        "parent_version": 1,
        "model_sha256": sha(0.2),
    }
    assert loaded.optimizer_bytes is not None
    # v1 is still there, untouched
    v1_meta = json.loads(bucket.blob("models/r1/v1/meta.json").download_as_bytes())
    assert v1_meta["contributors"] == ["a", "b"] and v1_meta["parent_version"] == 0


def test_stale_parent_is_a_conflict_before_any_write(bucket):
    publish(bucket, "r1", 1, 0.1)
    before = object_names(bucket)
    with pytest.raises(PublishConflictError, match="is at version 1, but this round builds on"):
        publish_version(
            bucket,
            run_id="r1",
            version=1,
            parent_version=0,
            model_bytes=model_bytes(0.9),
            optimizer_bytes=None,
            meta={},
        )
    assert object_names(bucket) == before
    assert load_latest(bucket, "r1").model_bytes == model_bytes(0.1)


def test_existing_version_is_never_overwritten(bucket):
    """Both planned against the same latest; the second finds the version already created."""
    plan_a = plan_publish(bucket, run_id="r1", version=1, parent_version=0, model_sha256=sha(0.1))
    plan_b = plan_publish(bucket, run_id="r1", version=1, parent_version=0, model_sha256=sha(0.9))
    commit_publish(bucket, plan_a, model_bytes=model_bytes(0.1), optimizer_bytes=None, meta={})
    with pytest.raises(PublishConflictError, match=r"models/r1/v1/model.npz already exists"):
        commit_publish(
            bucket, plan_b, model_bytes=model_bytes(0.9), optimizer_bytes=b"x", meta={"b": 1}
        )
    loaded = load_latest(bucket, "r1")
    assert loaded.model_bytes == model_bytes(0.1)
    assert loaded.optimizer_bytes is None
    assert object_names(bucket) == [
        "models/r1/latest.json",
        "models/r1/v1/meta.json",
        "models/r1/v1/model.npz",
    ]


def test_moved_pointer_is_a_conflict_and_the_version_is_withdrawn(bucket):
    """latest rewritten between plan and commit (e.g. an operator's rollback): no lost update."""
    publish(bucket, "r1", 1, 0.1)
    plan = plan_publish(bucket, run_id="r1", version=2, parent_version=1, model_sha256=sha(0.2))
    pointer_blob = bucket.blob(latest_key("r1"))
    rewritten = pointer_blob.download_as_bytes()
    pointer_blob.upload_from_string(rewritten)  # same body, new generation
    with pytest.raises(PublishConflictError, match="moved since it was read"):
        commit_publish(bucket, plan, model_bytes=model_bytes(0.2), optimizer_bytes=None, meta={})
    assert not [n for n in object_names(bucket) if n.startswith("models/r1/v2/")]
    assert bucket.blob(latest_key("r1")).download_as_bytes() == rewritten


def race(bucket, run: str, version: int, parent: int, n: int, same: bool = False) -> list[object]:
    """`n` coordinators, each with its own client, publish `version` at the same instant."""
    from google.cloud import storage

    barrier = threading.Barrier(n)
    results: list[object] = [None] * n

    def coordinator(i: int) -> None:
        client = storage.Client(
            project="fedpipe-local",
            credentials=bucket.client._credentials,
            client_options={"api_endpoint": bucket.client._connection.API_BASE_URL},
        )
        own_bucket = client.bucket(bucket.name)
        try:
            plan = plan_publish(
                own_bucket,
                run_id=run,
                version=version,
                parent_version=parent,
                model_sha256=sha(version + (0 if same else i / 10)),
            )
            barrier.wait(timeout=30)  # all have read latest before anyone writes
            results[i] = commit_publish(
                own_bucket,
                plan,
                model_bytes=model_bytes(version + (0 if same else i / 10)),
                optimizer_bytes=None,
                meta={"writer": i},
            )
        except Exception as exc:  # collected and asserted below
            results[i] = exc

    threads = [threading.Thread(target=coordinator, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def test_concurrent_coordinators_exactly_one_wins(bucket):
    publish(bucket, "r1", 1, 0.1)
    for version in (2, 3):  # twice, on top of each other's result
        results = race(bucket, "r1", version, version - 1, n=2)
        winners = [r for r in results if not isinstance(r, Exception)]
        losers = [r for r in results if isinstance(r, Exception)]
        assert len(winners) == 1, results
        assert len(losers) == 1 and isinstance(losers[0], PublishConflictError), results
        assert "already exists" in str(losers[0]) and "nothing overwritten" in str(losers[0])
        winner = results.index(winners[0])
        loaded = load_latest(bucket, "r1")
        assert loaded.pointer.version == version
        assert loaded.meta["writer"] == winner
        assert loaded.model_bytes == model_bytes(version + winner / 10)
    # every version is there once, none lost
    assert [n for n in object_names(bucket) if n.endswith("model.npz")] == [
        "models/r1/v1/model.npz",
        "models/r1/v2/model.npz",
        "models/r1/v3/model.npz",
    ]


def test_many_concurrent_coordinators_one_winner(bucket):
    results = race(bucket, "r2", 1, 0, n=6)
    assert sum(not isinstance(r, Exception) for r in results) == 1
    assert all(isinstance(r, PublishConflictError) for r in results if isinstance(r, Exception))
    assert read_latest(bucket, "r2").version == 1


def test_corrupt_model_behind_latest_is_refused(bucket):
    publish(bucket, "r1", 1, 0.1)
    blob = bucket.blob("models/r1/v1/model.npz")
    blob.upload_from_string(model_bytes(0.5))  # someone bypassed the create-only path
    with pytest.raises(PublishError, match="sha256 differs from latest.json"):
        load_latest(bucket, "r1")


def test_version_must_follow_parent(bucket):
    with pytest.raises(ValueError, match="does not follow"):
        plan_publish(bucket, run_id="r1", version=3, parent_version=1, model_sha256=sha(0))


def test_identical_republish_is_confirmed_without_writing(bucket):
    first = publish(bucket, "r1", 1, 0.1)
    before = {b.name: b.generation for b in bucket.list_blobs()}
    again = publish(bucket, "r1", 1, 0.1, note="a retry with other metadata")
    assert again.reused and not first.reused
    assert again.latest_generation == first.latest_generation
    assert {b.name: b.generation for b in bucket.list_blobs()} == before
    assert "note" not in load_latest(bucket, "r1").meta  # the first publish's meta stays
    # replaying v1 after v2 exists (a resumed run) is confirmed too; another model is not
    publish(bucket, "r1", 2, 0.2)
    assert publish(bucket, "r1", 1, 0.1).reused
    with pytest.raises(PublishConflictError, match="is at version 2"):
        publish(bucket, "r1", 1, 0.15)


def test_orphan_of_a_crashed_attempt_is_adopted_only_when_identical(bucket):
    # an earlier attempt wrote v1/model.npz and crashed before meta.json and the pointer
    _create(
        bucket,
        "models/r1/v1/model.npz",
        model_bytes(0.1),
        "application/octet-stream",
        {WRITER_KEY: "crashed-attempt", PARENT_KEY: "0"},
    )
    with pytest.raises(PublishConflictError, match="another model"):
        publish(bucket, "r1", 1, 0.9)
    assert object_names(bucket) == ["models/r1/v1/model.npz"]  # not ours: left alone
    done = publish(bucket, "r1", 1, 0.1)
    assert done.reused
    loaded = load_latest(bucket, "r1")
    assert loaded.model_bytes == model_bytes(0.1) and loaded.pointer.version == 1
    assert "models/r1/v1/meta.json" in object_names(bucket)


def test_a_twins_companions_written_first_do_not_withdraw_our_version(bucket):
    """The race behind a flaky CI run: coordinator A creates v1/model.npz, its identical twin B
    adopts it and writes meta.json (and optimizer.npz) before A does. A used to read that as
    'another writer, another model', withdraw model.npz and leave the version without it."""
    plan = plan_publish(bucket, run_id="r1", version=1, parent_version=0, model_sha256=sha(0.1))
    optimizer = dump_tensors({"m": constant_update(0.1)["output/bias"]})
    twin = {WRITER_KEY: "twin", PARENT_KEY: "0"}
    stamped = {"writer": "twin", "parent_version": 0, "model_sha256": sha(0.1)}
    _create(bucket, "models/r1/v1/meta.json", json_bytes(stamped), "application/json", twin)
    _create(bucket, "models/r1/v1/optimizer.npz", optimizer, "application/octet-stream", twin)
    done = commit_publish(
        bucket, plan, model_bytes=model_bytes(0.1), optimizer_bytes=optimizer, meta={"writer": 0}
    )
    assert not done.reused
    assert object_names(bucket) == [
        "models/r1/latest.json",
        "models/r1/v1/meta.json",
        "models/r1/v1/model.npz",
        "models/r1/v1/optimizer.npz",
    ]
    assert load_latest(bucket, "r1").model_bytes == model_bytes(0.1)


def test_a_stale_companion_of_another_model_is_still_a_conflict(bucket):
    plan = plan_publish(bucket, run_id="r1", version=1, parent_version=0, model_sha256=sha(0.1))
    stale = {"parent_version": 0, "model_sha256": sha(0.9)}  # left by a withdrawn other model
    _create(bucket, "models/r1/v1/meta.json", json_bytes(stale), "application/json", {})
    with pytest.raises(PublishConflictError, match="meta.json already exists"):
        commit_publish(bucket, plan, model_bytes=model_bytes(0.1), optimizer_bytes=None, meta={})
    assert object_names(bucket) == ["models/r1/v1/meta.json"]  # ours withdrawn, theirs kept


def test_concurrent_identical_coordinators_write_once(bucket):
    results = race(bucket, "r3", 1, 0, n=3, same=True)
    assert not [r for r in results if isinstance(r, Exception)], results
    assert sorted(r.reused for r in results) == [False, True, True]
    assert len({r.model_generation for r in results}) == 1
    assert read_latest(bucket, "r3").version == 1


def test_identity_survives_a_copy_without_object_metadata(bucket, gcs):
    """A bucket mirrored and restored (local runs) loses custom metadata; content decides."""
    publish(bucket, "r1", 1, 0.1)
    copy = gcs.create_bucket(unique("restored"))
    for blob in bucket.list_blobs():
        copy.blob(blob.name).upload_from_string(blob.download_as_bytes())
    assert copy.get_blob("models/r1/v1/model.npz").metadata in (None, {})
    assert publish(copy, "r1", 1, 0.1).reused
    with pytest.raises(PublishConflictError):
        publish(copy, "r1", 1, 0.3)


PUBLISHER = """
import json, os, sys, time
from pathlib import Path
from google.auth.credentials import AnonymousCredentials
from google.cloud import storage
from components.aggregation.publish import PublishConflictError, publish_version
from components.common.artifact_files import json_bytes
from components.common.tensors import dump_tensors
import numpy as np

url, bucket_name, value, go = sys.argv[1], sys.argv[2], float(sys.argv[3]), Path(sys.argv[4])
client = storage.Client(
    project="p", credentials=AnonymousCredentials(), client_options={"api_endpoint": url}
)
bucket = client.bucket(bucket_name)
model = dump_tensors({"w": np.full(3, value, np.float32)})
while not go.exists():
    time.sleep(0.001)
try:
    done = publish_version(bucket, run_id="rp", version=1, parent_version=0,
                           model_bytes=model, optimizer_bytes=None, meta={"value": value})
    print(json.dumps({"ok": done.uri, "reused": done.reused}))
except PublishConflictError as exc:
    print(json.dumps({"conflict": str(exc)}))
"""


def test_two_coordinator_processes_exactly_one_wins(bucket, gcs_server, tmp_path):
    import subprocess
    import sys

    go = tmp_path / "go"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", PUBLISHER, gcs_server.url, bucket.name, str(v), str(go)],
            stdout=subprocess.PIPE,
            text=True,
        )
        for v in (1.0, 2.0)
    ]
    go.touch()  # both processes start publishing at once
    outputs = [json.loads(p.communicate(timeout=60)[0].strip().splitlines()[-1]) for p in procs]
    assert sorted("ok" in o for o in outputs) == [False, True], outputs
    loser = next(o for o in outputs if "conflict" in o)
    assert "nothing" in loser["conflict"]
    winner = outputs.index(next(o for o in outputs if "ok" in o))
    loaded = load_latest(bucket, "rp")
    assert loaded.meta["value"] == (1.0, 2.0)[winner]
    assert [b.name for b in bucket.list_blobs(prefix="models/rp/")] == [
        "models/rp/latest.json",
        "models/rp/v1/meta.json",
        "models/rp/v1/model.npz",
    ]
