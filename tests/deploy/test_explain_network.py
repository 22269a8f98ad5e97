"""`fedpipe explain` shows a site's network routes next to its residency rules, from the same
decisions `fedpipe check` prints."""

from __future__ import annotations

import json
import re
import shutil

import yaml

from pipelines.cli import main
from tests.support.paths import REPO


def test_explain_shows_routes_with_the_rules_that_opened_them(capsys):
    args = ["--sites", str(REPO / "sites"), "--policies", str(REPO / "policies")]
    assert main(["explain", *args, "--site", "coordinator"]) == 0
    out = capsys.readouterr().out
    assert (
        "    object-store      minio.hospital-berlin.svc:9000: reads hospital-berlin's dp_update "
        "in hospital-berlin's store [eu-health rules.dp_update[0]]"
    ) in out
    assert "storage.googleapis.com:443: its own object store" in out


def test_us_coordinator_explain_withholds_what_check_denies(tmp_path, capsys):
    sites = tmp_path / "sites"
    shutil.copytree(REPO / "sites", sites)
    doc = yaml.safe_load((sites / "coordinator.yaml").read_text())
    doc.update(region="us-east1", jurisdiction="US")
    (sites / "coordinator.yaml").write_text(yaml.safe_dump(doc))
    args = ["--sites", str(sites), "--policies", str(REPO / "policies")]

    assert main(["check", *args]) == 1
    denied_rules = set(
        re.findall(r"from site hospital-berlin .*?; rule (\S+ rules\.\w+)", capsys.readouterr().err)
    )
    assert denied_rules == {
        "eu-health rules.validation_summary",
        "eu-health rules.dp_update",
        "eu-health rules.metrics",
    }
    assert main(["explain", *args, "--site", "hospital-berlin", "--json"]) == 0
    net = json.loads(capsys.readouterr().out)["hospital-berlin"]["network"]
    assert [r["kind"] for r in net["egress"]] == [
        "dns", "kubernetes-api", "kfp-control-plane", "object-store"
    ]  # fmt: skip
    (withheld,) = net["withheld"]
    assert withheld["kind"] == "artifact-store" and set(withheld["rules"]) == denied_rules
    assert main(["explain", *args, "--site", "coordinator", "--json"]) == 0
    coord = json.loads(capsys.readouterr().out)["coordinator"]["network"]
    assert {r["endpoint"] for r in coord["withheld"]} == {
        "minio.hospital-berlin.svc:9000",
        "minio.hospital-paris.svc:9000",
    }
