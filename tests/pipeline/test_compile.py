"""`fedpipe compile` / `compile-check`: determinism, version, violations leave --out empty."""

import shutil
from pathlib import Path

import pytest
import yaml

from pipelines.cli import main
from pipelines.compiler import (
    OUTPUT_FILES,
    PIPELINE_FILE,
    REPORT_JSON_FILE,
    compile_federation,
    strip_sdk_version,
)
from pipelines.kfp_ops.digest import pipeline_digest_of
from tests.support.example_federation import example_federation
from tests.support.paths import POLICIES_DIR, REPO, SITES_DIR

GOLDEN = REPO / "pipelines" / "compiled" / "federated-training.yaml"


def _compile(out: Path, sites: Path = SITES_DIR, policies: Path = POLICIES_DIR, *extra: str):
    return main(
        ["compile", "--sites", str(sites), "--policies", str(policies), "--out", str(out), *extra]
    )


@pytest.fixture()
def config_copy(tmp_path: Path) -> tuple[Path, Path]:
    sites, policies = tmp_path / "sites", tmp_path / "policies"
    shutil.copytree(SITES_DIR, sites)
    shutil.copytree(POLICIES_DIR, policies)
    return sites, policies


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, (path, old)
    path.write_text(text.replace(old, new))


def test_compile_writes_three_files_byte_identical_twice(tmp_path: Path, capsys):
    assert _compile(tmp_path / "a") == 0
    assert _compile(tmp_path / "b", SITES_DIR, POLICIES_DIR) == 0
    for name in OUTPUT_FILES:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
    assert "sha256:" in capsys.readouterr().out


def test_version_is_in_description_and_report_and_tracks_the_config(config_copy):
    sites, policies = config_copy
    first = compile_federation(example_federation())
    docs = list(yaml.safe_load_all(first.pipeline_yaml))
    assert docs[0]["pipelineInfo"]["description"].endswith(f"digest: {first.version}")
    assert pipeline_digest_of(first.pipeline_yaml) == first.version
    assert f'"pipeline_version": "{first.version}"' in first.report_json
    assert first.version in first.report_markdown
    _edit(sites / "hospital-paris.yaml", 'snapshot: "2026-11-01"', 'snapshot: "2026-11-02"')
    from pipelines.config.loader import load_federation

    second = compile_federation(load_federation(sites, policies))
    assert second.version != first.version
    assert compile_federation(example_federation(), rounds=2).version != first.version


def test_sdk_version_does_not_change_the_version():
    compiled = compile_federation(example_federation())
    other = compiled.pipeline_yaml.replace("sdkVersion: kfp-2.13.0", "sdkVersion: kfp-2.99.0")
    assert other != compiled.pipeline_yaml
    assert strip_sdk_version(other) == strip_sdk_version(compiled.pipeline_yaml)


@pytest.mark.parametrize("existing", [False, True])
def test_coordinator_outside_the_eu_is_refused_and_out_stays_empty(
    config_copy, tmp_path: Path, capsys, existing: bool
):
    sites, policies = config_copy
    _edit(sites / "coordinator.yaml", "region: europe-west4", "region: us-east1")
    _edit(sites / "coordinator.yaml", "jurisdiction: NL", "jurisdiction: US")
    out = tmp_path / "out"
    if existing:
        out.mkdir()
    assert _compile(out, sites, policies) == 1
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if "DENIED" in line]
    berlin = [line for line in lines if "export-hospital-berlin-r1" in line]
    assert len(berlin) == 1
    assert "artifact update (class dp_update) from site hospital-berlin to coordinator" in berlin[0]
    assert "rule eu-health rules.dp_update" in berlin[0]
    assert not any("from site clinic-boston" in line for line in lines)  # US rule allows
    # every EU crossing is named: summary (to initialize and to report), update, metrics
    # of both EU sites
    assert len(lines) == 8
    if existing:
        assert list(out.iterdir()) == []
    else:
        assert not out.exists()
    assert not list(tmp_path.glob(".out-staging-*"))


def test_dp_update_allowed_nowhere_is_refused(config_copy, tmp_path: Path, capsys):
    sites, policies = config_copy
    _edit(
        policies / "eu-health.yaml",
        "dp_update:\n    - roles: [coordinator]\n      jurisdictions: [EU]",
        "dp_update: []",
    )
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("old")
    assert _compile(out, sites, policies) == 1
    err = capsys.readouterr().err
    assert "export-hospital-paris-r1 artifact update (class dp_update)" in err
    assert "dp_update may go nowhere" in err
    assert sorted(p.name for p in out.iterdir()) == ["keep.txt"]


def test_config_error_exits_2_and_writes_nothing(config_copy, tmp_path: Path, capsys):
    sites, policies = config_copy
    _edit(sites / "hospital-berlin.yaml", "region: de-berlin", "regoin: de-berlin")
    out = tmp_path / "out"
    assert _compile(out, sites, policies) == 2
    assert "hospital-berlin.yaml" in capsys.readouterr().err
    assert not out.exists()


def test_existing_out_files_are_replaced(tmp_path: Path):
    out = tmp_path / "out"
    out.mkdir()
    (out / PIPELINE_FILE).write_text("stale")
    assert _compile(out) == 0
    assert (out / PIPELINE_FILE).read_text().startswith("# PIPELINE DEFINITION")
    assert (out / REPORT_JSON_FILE).is_file()


def test_golden_yaml_matches_a_fresh_compile():
    fresh = compile_federation(example_federation()).pipeline_yaml
    assert strip_sdk_version(GOLDEN.read_text()) == strip_sdk_version(fresh), (
        "pipelines/compiled/federated-training.yaml is stale: run "
        "`fedpipe compile-check --golden pipelines/compiled/federated-training.yaml --update`"
    )


def test_compile_check_passes_on_golden_and_fails_with_a_diff(tmp_path: Path, capsys):
    args = ["compile-check", "--sites", str(SITES_DIR), "--policies", str(POLICIES_DIR)]
    assert main([*args, "--golden", str(GOLDEN)]) == 0
    stale = tmp_path / "stale.yaml"
    stale.write_text(
        GOLDEN.read_text().replace("fedpipe.dev/jurisdiction: FR", "fedpipe.dev/jurisdiction: XX")
    )
    assert main([*args, "--golden", str(stale)]) == 1
    err = capsys.readouterr().err
    changed = [line for line in err.splitlines() if "fedpipe.dev/jurisdiction" in line]
    assert any(line.startswith("-") and "jurisdiction: XX" in line for line in changed), err
    assert any(line.startswith("+") and "jurisdiction: FR" in line for line in changed), err


def test_compile_check_fails_on_a_violation(config_copy, capsys):
    sites, policies = config_copy
    _edit(sites / "coordinator.yaml", "region: europe-west4", "region: us-east1")
    _edit(sites / "coordinator.yaml", "jurisdiction: NL", "jurisdiction: US")
    args = ["compile-check", "--sites", str(sites), "--policies", str(policies)]
    assert main([*args, "--golden", str(GOLDEN)]) == 1
    assert "DENIED" in capsys.readouterr().err


def test_two_processes_give_byte_identical_yaml(tmp_path: Path):
    import os
    import subprocess
    import sys

    outputs = []
    for seed in ("1", "2"):
        out = tmp_path / f"out{seed}"
        env = {**os.environ, "PYTHONHASHSEED": seed, "FEDPIPE_GENERATED_DIR": str(tmp_path / seed)}
        subprocess.run(
            [sys.executable, "-m", "pipelines.cli", "compile", "--sites", str(SITES_DIR),
             "--policies", str(POLICIES_DIR), "--out", str(out)],
            check=True, env=env, cwd=REPO, capture_output=True,
        )  # fmt: skip
        outputs.append((out / PIPELINE_FILE).read_bytes())
    assert outputs[0] == outputs[1]


def test_write_outputs_is_all_or_nothing(tmp_path: Path, monkeypatch):
    from pipelines import compiler

    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("old")
    real_write = Path.write_text
    calls = []

    def failing_write(self, text, *args, **kwargs):
        calls.append(self.name)
        if len(calls) == 2:
            raise OSError("disk full")
        return real_write(self, text, *args, **kwargs)

    monkeypatch.setattr(Path, "write_text", failing_write)
    with pytest.raises(OSError, match="disk full"):
        compiler.write_outputs({"a.yaml": "a", "b.json": "b", "c.md": "c"}, out)
    monkeypatch.undo()
    assert sorted(p.name for p in out.iterdir()) == ["keep.txt"]
    assert not list(tmp_path.glob(".out-staging-*"))


def test_secagg_compiles_when_every_member_policy_asks_for_it(config_copy, tmp_path, capsys):
    sites, policies = config_copy
    _edit(policies / "eu-health.yaml", "aggregation:\n", "aggregation:\n  protection: secagg\n")
    out = tmp_path / "out"
    # one member policy asking: Boston (us-health) would export in the clear
    assert _compile(out, sites, policies) == 1
    err = capsys.readouterr().err
    assert "aggregation.protection secagg needs every member site's policy" in err
    assert "us-health" in err and "a masked sum" in err
    assert not out.exists() or not any(out.iterdir())
    # two policies asking for different protections: refused naming both
    _edit(policies / "us-health.yaml", "aggregation:\n", "aggregation:\n  protection: he\n")
    assert _compile(out, sites, policies) == 1
    err = capsys.readouterr().err
    assert "he by us-health; secagg by eu-health" in err
    # every member asking secagg: the SecAgg+ stages compile
    _edit(policies / "us-health.yaml", "protection: he", "protection: secagg")
    assert _compile(out, sites, policies) == 0
    assert "shares-hospital-berlin" in (out / "federated-training.yaml").read_text()


def test_protection_none_is_the_default_and_compiles_unchanged(config_copy, tmp_path):
    sites, policies = config_copy
    for name in ("eu-health.yaml", "us-health.yaml", "coordinator.yaml"):
        _edit(policies / name, "aggregation:\n", "aggregation:\n  protection: none\n")
    assert _compile(tmp_path / "a", sites, policies) == 0


def test_the_coordinator_policy_chooses_the_rule(config_copy, tmp_path, capsys):
    sites, policies = config_copy
    golden = next(yaml.safe_load_all(GOLDEN.read_text()))
    assert golden["root"]["inputDefinitions"]["parameters"]["rule"]["defaultValue"] == "fedavg"
    coordinator = policies / "coordinator.yaml"
    _edit(coordinator, "aggregation:\n", "aggregation:\n  rule: screened_geometric_median\n")
    assert _compile(tmp_path / "out", sites, policies) == 0
    compiled = next(yaml.safe_load_all((tmp_path / "out" / PIPELINE_FILE).read_text()))
    params = compiled["root"]["inputDefinitions"]["parameters"]
    assert params["rule"]["defaultValue"] == "screened_geometric_median"
    # the policy's rule is checked like a run's: no robust rule over a masked sum
    for name in ("eu-health.yaml", "us-health.yaml", "coordinator.yaml"):
        _edit(policies / name, "aggregation:\n", "aggregation:\n  protection: secagg\n")
    assert _compile(tmp_path / "refused", sites, policies) == 1
    assert "screened_geometric_median" in capsys.readouterr().err
    # a misspelt rule is a configuration error naming the known rules
    _edit(coordinator, "rule: screened_geometric_median", "rule: screened_median")
    assert _compile(tmp_path / "bad", sites, policies) == 2
    assert "'screened_median' is not an aggregation rule" in capsys.readouterr().err
