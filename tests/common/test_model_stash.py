"""The trained model stays in the site's bucket; the KFP artifact holds a reference only.

Against the real S3-compatible test server (SeaweedFS on 127.0.0.1).
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from components.common.model_stash import (
    REF_FILE,
    StashError,
    export_from_site_bucket,
    stash,
    stash_prefix,
    train_into_site_bucket,
    unstash,
)
from components.common.site_task import split_task_inputs
from tests.support.site_env import make_site_env

pytestmark = pytest.mark.integration


@pytest.fixture()
def site(minio, tmp_path, monkeypatch):
    return make_site_env(minio, tmp_path, monkeypatch)


def _trained(folder: Path) -> Path:
    folder.mkdir(parents=True)
    (folder / "model.npz").write_bytes(b"weights" * 100)
    (folder / "meta.json").write_text('{"status": "trained"}')
    return folder


def _stash(site, files: Path, artifact: Path) -> dict:
    return stash(files, artifact, site=site.site, policy=site.policy, run_id="run-s",
                 round_index=2, client=site.client)  # fmt: skip


def test_only_the_reference_reaches_the_artifact(site, tmp_path):
    ref = _stash(site, _trained(tmp_path / "out"), tmp_path / "artifact")
    assert sorted(p.name for p in (tmp_path / "artifact").iterdir()) == [REF_FILE]
    assert json.loads((tmp_path / "artifact" / REF_FILE).read_text()) == ref
    assert ref["bucket"] == site.bucket and ref["site_id"] == "hospital-berlin"
    assert ref["prefix"].startswith("local-models/run-s/round-0002/hospital-berlin/")
    stored = site.client.get_object(site.bucket, ref["prefix"] + "model.npz").read()
    assert stored == b"weights" * 100
    stat = site.client.stat_object(site.bucket, ref["prefix"] + "model.npz")
    assert stat.metadata.get("x-amz-server-side-encryption") == "AES256"  # eu-health: sse-s3


def test_unstash_restores_the_bytes_and_a_repeat_is_a_no_op(site, tmp_path):
    files = _trained(tmp_path / "out")
    first = _stash(site, files, tmp_path / "a1")
    assert _stash(site, files, tmp_path / "a2") == first  # content-addressed, no error
    back = unstash(tmp_path / "a1", tmp_path / "back", site=site.site, client=site.client)
    assert (back / "model.npz").read_bytes() == (files / "model.npz").read_bytes()
    assert (back / "meta.json").read_text() == '{"status": "trained"}'


def test_a_model_changed_in_the_bucket_is_refused(site, tmp_path):
    ref = _stash(site, _trained(tmp_path / "out"), tmp_path / "artifact")
    key = ref["prefix"] + "model.npz"
    site.client.put_object(site.bucket, key, io.BytesIO(b"evil"), 4)
    with pytest.raises(StashError, match=f"site hospital-berlin: s3://{site.bucket}/{key} does"):
        unstash(tmp_path / "artifact", tmp_path / "back", site=site.site, client=site.client)


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"site_id": "hospital-paris"}, "points at site 'hospital-paris'"),
        ({"bucket": "elsewhere"}, "bucket 'elsewhere'"),
        ({"files": {"../ledger.json": "0" * 64}}, "unexpected objects"),
        ({"prefix": "ledger/"}, "unexpected objects"),
    ],
)
def test_a_reference_to_anything_else_is_refused(site, tmp_path, change, match):
    ref = _stash(site, _trained(tmp_path / "out"), tmp_path / "artifact")
    (tmp_path / "artifact" / REF_FILE).write_text(json.dumps({**ref, **change}))
    with pytest.raises(StashError, match=match):
        unstash(tmp_path / "artifact", tmp_path / "back", site=site.site, client=site.client)


def test_missing_object_and_missing_reference_name_the_site(site, tmp_path):
    with pytest.raises(StashError, match="site hospital-berlin: .* is not a local-model reference"):
        unstash(tmp_path / "nothing", tmp_path / "back", site=site.site, client=site.client)
    ref = {"format": "x", "site_id": "hospital-berlin", "bucket": site.bucket,
           "prefix": stash_prefix("r", 1, "hospital-berlin", "0" * 16), "files": {"model.npz": "0"}}  # fmt: skip
    (tmp_path / "art").mkdir()
    (tmp_path / "art" / REF_FILE).write_text(json.dumps(ref))
    with pytest.raises(StashError, match="NoSuchKey"):
        unstash(tmp_path / "art", tmp_path / "back", site=site.site, client=site.client)


def test_glue_keeps_the_model_out_of_the_artifact_and_feeds_export(site, tmp_path, monkeypatch):
    monkeypatch.setattr(
        "components.common.model_stash.site_minio_client", lambda _site: site.client
    )
    artifact = tmp_path / "local_model"
    seen: dict = {}

    def fake_train(task, **paths):
        assert task.run_id == "run-g"
        _trained(Path(paths["local_model"]))

    def fake_export(task, **paths):
        seen["files"] = sorted(p.name for p in Path(paths["local_model"]).iterdir())
        seen["model"] = (Path(paths["local_model"]) / "model.npz").read_bytes()

    task, paths = split_task_inputs({**site.common("run-g", 1), "local_model": str(artifact)})
    train_into_site_bucket(fake_train, task, paths, tmp_path / "scratch-train")
    assert [p.name for p in artifact.iterdir()] == [REF_FILE]
    export_from_site_bucket(fake_export, task, paths, tmp_path / "scratch-export")
    assert seen == {"files": ["meta.json", "model.npz"], "model": b"weights" * 100}


def test_an_abstained_train_passes_its_reason_through(site, tmp_path, monkeypatch):
    def unreachable(_site):
        raise AssertionError("an abstention must not need the bucket")

    monkeypatch.setattr("components.common.model_stash.site_minio_client", unreachable)
    artifact = tmp_path / "local_model"

    def abstaining_train(task, **paths):
        Path(paths["local_model"]).mkdir(parents=True)
        (Path(paths["local_model"]) / "meta.json").write_text('{"status": "abstained"}')

    seen = {}
    task, paths = split_task_inputs({**site.common("run-a", 1), "local_model": str(artifact)})
    train_into_site_bucket(abstaining_train, task, paths, tmp_path / "scratch")
    assert (artifact / "meta.json").read_text() == '{"status": "abstained"}'
    export_from_site_bucket(lambda task, **kw: seen.update(kw), task, paths, tmp_path / "scratch2")
    assert seen["local_model"] == str(artifact)
