"""A wrong secret key in a site's local secret: a clear error naming the site and the store."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from components.common.object_store import credentials_problem
from pipelines.cli import main
from tests.support.paths import REPO


def test_credentials_problem_by_hand() -> None:
    text = credentials_problem("SignatureDoesNotMatch", "hospital-berlin", "s3://127.0.0.1:9")
    assert text == (
        "site hospital-berlin: object store s3://127.0.0.1:9 refused its credentials "
        "(SignatureDoesNotMatch: the secret key does not match the access key); check the "
        "site's S3_ACCESS_KEY / S3_SECRET_KEY (FEDPIPE_S3_ACCESS_KEY__HOSPITAL_BERLIN and the "
        "matching FEDPIPE_S3_SECRET_KEY__..., or $FEDPIPE_SECRETS_DIR/hospital-berlin/"
        "s3_access_key and s3_secret_key; on Kubernetes the Secret named in the site file)"
    )
    assert "no such access key" in (credentials_problem("InvalidAccessKeyId", "a", "s") or "")
    assert credentials_problem("NoSuchKey", "a", "s") is None
    assert credentials_problem(None, "a", "s") is None


@pytest.mark.integration
def test_run_with_a_wrong_secret_names_site_and_store(
    s3_server, gcs_server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    sites = ["clinic-boston", "hospital-berlin", "hospital-paris"]
    monkeypatch.setenv(
        "FEDPIPE_ENDPOINT_OVERRIDES", json.dumps({s: s3_server.endpoint for s in sites})
    )
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", gcs_server.url)
    monkeypatch.setenv("FEDPIPE_S3_ACCESS_KEY", s3_server.access_key)
    monkeypatch.setenv("FEDPIPE_S3_SECRET_KEY", s3_server.secret_key)
    monkeypatch.setenv("FEDPIPE_S3_SECRET_KEY__HOSPITAL_BERLIN", s3_server.secret_key + "-wrong")
    args = ["run", "--local", "--rounds", "1", "--isolation", "process", "--run-id", "t-wrong"]
    args += ["--sites", str(REPO / "sites"), "--policies", str(REPO / "policies")]
    args += ["--runs-dir", str(tmp_path / "runs"), "--no-baseline"]
    code = main(args)
    err = capsys.readouterr().err
    assert code != 0
    assert (
        f"site hospital-berlin: object store s3://{s3_server.endpoint} refused its credentials"
        in err
    ), err
    assert "Traceback" not in err
    # a HEAD request (bucket_exists) gets a bodiless 403, which the client reads as AccessDenied
    assert "SignatureDoesNotMatch" in err or "AccessDenied: wrong keys" in err
    assert not (tmp_path / "runs" / "t-wrong" / "summary.json").exists()


@pytest.mark.integration
def test_a_task_client_with_a_wrong_secret_names_site_and_store(
    s3_server, minio, monkeypatch: pytest.MonkeyPatch
) -> None:
    from components.common.object_store import StoreAccessError, site_minio_client
    from components.domain.models import Site
    from pipelines.config.loader import load_federation

    site = load_federation(REPO / "sites", REPO / "policies").sites["hospital-berlin"]
    assert isinstance(site, Site)
    if not minio.bucket_exists(site.object_store.bucket):
        minio.make_bucket(site.object_store.bucket)
    minio.put_object(site.object_store.bucket, "data/x.csv", io.BytesIO(b"x"), 1)
    monkeypatch.setenv("FEDPIPE_ENDPOINT_OVERRIDES", json.dumps({site.id: s3_server.endpoint}))
    monkeypatch.setenv("FEDPIPE_S3_ACCESS_KEY__HOSPITAL_BERLIN", s3_server.access_key)
    monkeypatch.setenv("FEDPIPE_S3_SECRET_KEY__HOSPITAL_BERLIN", "not-the-secret")
    client = site_minio_client(site)
    with pytest.raises(StoreAccessError) as refused:
        client.get_object(site.object_store.bucket, "data/x.csv")
    assert str(refused.value).startswith(
        f"site hospital-berlin: object store http://{s3_server.endpoint} (bucket "
        "hospital-berlin-fl) refused its credentials (SignatureDoesNotMatch"
    )
    monkeypatch.setenv("FEDPIPE_S3_SECRET_KEY__HOSPITAL_BERLIN", s3_server.secret_key)
    assert site_minio_client(site).get_object(site.object_store.bucket, "data/x.csv").read() == b"x"
