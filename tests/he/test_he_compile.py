"""`aggregation.protection: he` compiles: exports become masked_update edges, the rest of the
DAG is unchanged; a member whose policy does not ask for he is refused by name."""

import json
import shutil
from pathlib import Path

import pytest
import yaml

from pipelines.cli import main
from pipelines.compiler import PIPELINE_FILE, REPORT_JSON_FILE
from tests.support.paths import POLICIES_DIR, SITES_DIR

HE = "aggregation:\n  protection: he\n"


@pytest.fixture()
def config_copy(tmp_path: Path) -> tuple[Path, Path]:
    sites, policies = tmp_path / "sites", tmp_path / "policies"
    shutil.copytree(SITES_DIR, sites)
    shutil.copytree(POLICIES_DIR, policies)
    return sites, policies


def _he(path: Path) -> None:
    text = path.read_text()
    assert "aggregation:\n" in text
    path.write_text(text.replace("aggregation:\n", HE))


def _compile(out: Path, sites: Path, policies: Path) -> int:
    return main(["compile", "--sites", str(sites), "--policies", str(policies), "--out", str(out)])


def test_he_in_every_member_policy_compiles_with_encrypted_export_edges(config_copy, tmp_path):
    sites, policies = config_copy
    _he(policies / "eu-health.yaml")
    _he(policies / "us-health.yaml")
    out = tmp_path / "out"
    assert _compile(out, sites, policies) == 0
    spec = next(yaml.safe_load_all((out / PIPELINE_FILE).read_text()))
    classes = {
        name: comp["outputDefinitions"]["artifacts"]["update"]["description"]
        for name, comp in spec["components"].items()
        if name.startswith("comp-export")
    }
    assert classes and all(c == "fedpipe.artifact_class=masked_update" for c in classes.values())
    report = json.loads((out / REPORT_JSON_FILE).read_text())
    crossings = [e for e in report["crossing"] if e["artifact"] == "update"]
    assert crossings and {e["class"] for e in crossings} == {"masked_update"}


def test_he_asked_by_one_member_policy_only_is_refused_naming_the_other(
    config_copy, tmp_path, capsys
):
    sites, policies = config_copy
    _he(policies / "eu-health.yaml")
    out = tmp_path / "out"
    assert _compile(out, sites, policies) == 1
    err = capsys.readouterr().err
    assert "needs every member site's policy to ask for it; us-health" in err
    assert not out.exists() or not any(out.iterdir())


def test_check_lists_the_encrypted_update_as_a_masked_update(config_copy, capsys):
    sites, policies = config_copy
    _he(policies / "eu-health.yaml")
    _he(policies / "us-health.yaml")
    assert main(["check", "--sites", str(sites), "--policies", str(policies), "-v"]) == 0
    out = capsys.readouterr().out.splitlines()
    lines = [line for line in out if line.startswith("allowed: task export@")]
    assert lines and all("masked_update" in line for line in lines), lines
