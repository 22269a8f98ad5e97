"""No secret value (object-store keys, signing keys, the API token) appears in any file the
deployment commands write, in their output or error messages, or in any log record (DEBUG)."""

from __future__ import annotations

import base64
import logging
from pathlib import Path

import pytest

from pipelines.cli import main

from .conftest import REPO, FakeCluster

pytestmark = pytest.mark.integration


def needles(values: list[str]) -> list[str]:
    out = []
    for v in values:
        out += [v, base64.b64encode(v.encode()).decode()]
    return out


def test_no_secret_value_in_files_output_errors_or_logs(
    cluster: FakeCluster, capsys, caplog, tmp_path: Path
):
    texts: list[str] = []
    args = ["--sites", str(REPO / "sites"), "--policies", str(REPO / "policies")]
    kfp_token = "kfp-" + cluster.secret_values[0][::-1]  # a KFP bearer token, also secret
    doctor = [*cluster.doctor_args(), "--existing-token", kfp_token]
    with caplog.at_level(logging.DEBUG):
        assert main(doctor) == 0
        # failures: a missing key, an empty key, a missing Secret, then a refused token
        state = cluster.kube.state
        del state.secrets[("fedpipe", "hospital-berlin-object-store")].data["signing-key"]
        state.secrets[("fedpipe", "hospital-paris-object-store")].data["access-key"] = ""
        assert main(doctor) == 1
        cluster.kube.token = "x"
        assert main(doctor) == 1
        cluster.kfp.stop()  # and an unreachable KFP host
        assert main(doctor) == 1
        assert main(["manifests", *args, "--out", str(tmp_path / "manifests")]) == 0
        assert main(["explain", *args]) == 0
        assert main(["compile", *args, "--out", str(tmp_path / "c"), "--image", "x:latest"]) == 2
        captured = capsys.readouterr()
        texts += [captured.out, captured.err, caplog.text]
    assert "FAIL  secret fedpipe/hospital-berlin-object-store: key(s) missing" in captured.out
    assert any("response body" in r.getMessage() for r in caplog.records)  # DEBUG was on
    generated = [tmp_path / "manifests", cluster.package.parent]  # not the fixture's kubeconfig
    files = [p for d in generated for p in d.rglob("*") if p.is_file()]
    assert len(files) >= 11
    texts += [p.read_text(encoding="utf-8") for p in files]
    assert "FAIL  kfp api: cannot reach KFP host" in captured.out
    for needle in needles([*cluster.secret_values, kfp_token]):
        for text in texts:
            assert needle not in text
