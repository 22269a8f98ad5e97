"""`fedpipe audit verify|show RUN` over chains in the sites' S3 buckets and the coordinator's
GCS bucket (real servers on 127.0.0.1), with a copy of the example federation whose signing
keys this test holds."""

from __future__ import annotations

import itertools
import json
import shutil
from pathlib import Path

import pytest
import yaml

from components.audit.store import ChainWriter, GcsStore, S3Store, record_key
from components.common.manifest import generate_keypair
from pipelines.cli import main
from pipelines.config.loader import load_federation
from tests.support.federation import unique

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture()
def federation(tmp_path, monkeypatch, s3_server, minio, gcs):
    """sites/ + policies/ copied with new signing keys; buckets on the test servers."""
    shutil.copytree(ROOT / "policies", tmp_path / "policies")
    (tmp_path / "sites").mkdir()
    keys = {}
    for path in sorted((ROOT / "sites").glob("*.yaml")):
        spec = yaml.safe_load(path.read_text())
        private, public = generate_keypair()
        keys[spec["id"]] = private
        spec["signing"] = {"public_key": public}
        (tmp_path / "sites" / path.name).write_text(yaml.safe_dump(spec))
    fed = load_federation(tmp_path / "sites", tmp_path / "policies")
    monkeypatch.setenv(
        "FEDPIPE_ENDPOINT_OVERRIDES", json.dumps({s: s3_server.endpoint for s in fed.sites})
    )
    monkeypatch.setenv("FEDPIPE_S3_ACCESS_KEY", s3_server.access_key)
    monkeypatch.setenv("FEDPIPE_S3_SECRET_KEY", s3_server.secret_key)
    for site in fed.sites.values():
        if not minio.bucket_exists(site.object_store.bucket):
            minio.make_bucket(site.object_store.bucket)
    name = fed.coordinator.object_store.bucket
    bucket = gcs.lookup_bucket(name) or gcs.create_bucket(name)
    return tmp_path, fed, keys, minio, bucket


def write_run(fed, keys, minio, bucket, run_id: str, digests=None) -> None:
    ticks = itertools.count()

    def now() -> str:
        return f"2026-12-02T12:{next(ticks):02d}:00Z"

    exports = []
    for site_id, site in fed.sites.items():
        store = S3Store(minio, site.object_store.bucket)
        writer = ChainWriter(store, run_id, f"site/{site_id}", keys[site_id], now)
        writer.append("admission", {"round": 0, "summary": f"{site_id} accepted the run"})
        exports.append(writer.append("export", {"round": 1, "summary": "update sha256 ab12"}).hash)
        writer.checkpoint()
    coord = ChainWriter(GcsStore(bucket), run_id, "coordinator", keys[fed.coordinator.id], now)
    coord.append("initialize", {"round": 0, "decision": "accept", "summary": "v0"})
    coord.append("aggregate", {"round": 1, "summary": "v1"}, refs=exports)
    coord.append("publish", {"round": 1, "version": 1, "summary": "v1 published"})
    report = {"round": 1, "final_version": 1, "summary": "report sha256 cd34"}
    coord.append("report", report if digests is None else {**report, "sha256": digests})
    coord.checkpoint()


def test_verify_passes_on_a_clean_run_and_fails_on_a_removed_site_record(federation, capsys):
    folder, fed, keys, minio, bucket = federation
    run_id = unique("run")
    write_run(fed, keys, minio, bucket, run_id)
    args = ["--sites", str(folder / "sites"), "--policies", str(folder / "policies")]
    assert main(["audit", "verify", run_id, *args]) == 0
    out = capsys.readouterr().out
    assert "records per chain: coordinator 4, site/clinic-boston 2" in out
    assert "report sha256 cd34" in out
    assert "site/hospital-berlin" in out and "accepted the run" in out
    assert out.rstrip().endswith("verified: every chain, checkpoint and cross-reference")

    berlin = fed.sites["hospital-berlin"].object_store.bucket
    minio.remove_object(berlin, record_key(run_id, "site/hospital-berlin", 1))  # no lock here
    assert main(["audit", "verify", run_id, *args]) == 1
    out = capsys.readouterr().out
    assert "PROBLEM site/hospital-berlin: checkpoint of" in out and "(truncated)" in out
    assert "that no site chain holds (removed or altered at the site)" in out
    assert main(["audit", "show", run_id, *args]) == 0  # show renders, never fails on problems


def test_a_coordinator_without_a_key_needs_one_on_the_command_line(federation, capsys):
    folder, *_ = federation
    spec = yaml.safe_load((folder / "sites" / "coordinator.yaml").read_text())
    del spec["signing"]
    (folder / "sites" / "coordinator.yaml").write_text(yaml.safe_dump(spec))
    args = ["--sites", str(folder / "sites"), "--policies", str(folder / "policies")]
    assert main(["audit", "verify", "r1", *args]) == 2
    assert "pass its audit key with --coordinator-key FILE" in capsys.readouterr().err


def test_verify_recomputes_the_report_files_and_names_a_changed_one(federation, capsys, tmp_path):
    """--report-dir: the report task's outputs (html, markdown, summary/summary.json as the
    pipeline root holds them) are hashed and compared with the coordinator's report record;
    a local run folder is searched for its kfp/<pipeline>/report."""
    import hashlib

    folder, fed, keys, minio, bucket = federation
    out = tmp_path / "run-x" / "kfp" / "federated-training-2026-12-02-12-00-00" / "report"
    (out / "summary").mkdir(parents=True)
    contents = {"html": b"<p>acc 0.95</p>", "markdown": b"acc 0.95", "summary/summary.json": b"{}"}
    for rel, data in contents.items():
        (out / rel).write_bytes(data)
    names = {"html": "html", "markdown": "markdown", "summary/summary.json": "summary.json"}
    digests = {names[rel]: hashlib.sha256(data).hexdigest() for rel, data in contents.items()}
    run_id = unique("run")
    write_run(fed, keys, minio, bucket, run_id, digests)
    args = ["--sites", str(folder / "sites"), "--policies", str(folder / "policies")]
    for given in (out, tmp_path / "run-x"):
        assert main(["audit", "verify", run_id, *args, "--report-dir", str(given)]) == 0
        assert f"report files: checked against the report record in {out}" in (
            capsys.readouterr().out
        )
    assert main(["audit", "verify", run_id, *args]) == 0
    assert "report files: not checked" in capsys.readouterr().out

    (out / "summary" / "summary.json").write_bytes(b'{"final": {"accuracy": 0.99}}')
    assert main(["audit", "verify", run_id, *args, "--report-dir", str(out)]) == 1
    problems = [line for line in capsys.readouterr().out.splitlines() if "PROBLEM" in line]
    assert len(problems) == 1, problems
    assert problems[0].startswith(
        f"PROBLEM report file summary.json in {out} was changed after the report task wrote it"
    )
