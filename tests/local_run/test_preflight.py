"""`fedpipe run --local` refuses what it can before anything starts: run parameters against
the compiled pipeline's inputs and their value rules, and DP off against every policy."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from pipelines.cli import main
from pipelines.config.loader import load_federation
from pipelines.local_run import stores as stores_mod
from pipelines.local_run.options import (
    RunError,
    RunOptions,
    argument_problems,
    effective_dp,
    run_parameter_rules,
)
from pipelines.local_run.runner import preflight

REPO = Path(__file__).resolve().parents[2]
TYPES = {
    "noise_multiplier": "NUMBER_DOUBLE",
    "local_epochs": "NUMBER_INTEGER",
    "dp_enabled": "BOOLEAN",
    "rule": "STRING",
    "config_sites": "STRING",
}


def test_argument_problems_name_each_parameter() -> None:
    rules = run_parameter_rules()
    assert argument_problems(TYPES, {"noise_multiplier": 2, "rule": "median"}, rules) == []
    problems = argument_problems(
        TYPES,
        {
            "nosuch": 1,
            "noise_multiplier": -1.0,
            "local_epochs": "two",
            "rule": "avg",
            "config_sites": "{}",
            "dp_enabled": "no",
        },
        rules,
    )
    assert problems == [
        "--param config_sites: compiled configuration, not a run knob; edit sites/ or "
        "policies/ instead (tasks refuse a text whose digest differs)",
        "--param dp_enabled='no': must be a BOOLEAN value",
        "--param local_epochs='two': must be a NUMBER_INTEGER value",
        "--param noise_multiplier=-1.0: must be a finite number > 0 (DP-SGD noise; to train "
        "without DP set dp_enabled=false)",
        "--param nosuch: the compiled pipeline has no such parameter; it has dp_enabled, "
        "local_epochs, noise_multiplier, rule",
        "--param rule='avg': must be one of centred_clipping, fedavg, geometric_median, krum, "
        "median, multi_krum, norm_bounded_mean, screened_geometric_median, trimmed_mean",
    ]


def test_effective_dp_from_flag_and_parameter() -> None:
    assert effective_dp(RunOptions()) is True
    assert effective_dp(RunOptions(dp=False)) is False
    assert effective_dp(RunOptions(overrides={"dp_enabled": False})) is False
    assert effective_dp(RunOptions(dp=False, overrides={"dp_enabled": False})) is False
    with pytest.raises(RunError, match="contradict"):
        effective_dp(RunOptions(dp=False, overrides={"dp_enabled": True}))


def _strict_policies(tmp_path: Path) -> Path:
    """The example policies with eu-health's dp.allow_dp_off set to false."""
    out = tmp_path / "policies"
    shutil.copytree(REPO / "policies", out)
    path = out / "eu-health.yaml"
    body = yaml.safe_load(path.read_text())
    body["dp"]["allow_dp_off"] = False
    path.write_text(yaml.safe_dump(body))
    return out


def test_preflight_refuses_dp_off_by_parameter_naming_the_sites(tmp_path: Path) -> None:
    federation = load_federation(REPO / "sites", _strict_policies(tmp_path))
    options = RunOptions(rounds=1, overrides={"dp_enabled": False})
    with pytest.raises(RunError) as refused:
        preflight(options, federation)
    text = str(refused.value)
    assert text.startswith("--param dp_enabled=false refused")
    assert "hospital-berlin (policy eu-health), hospital-paris (policy eu-health)" in text
    assert "clinic-boston" not in text  # us-health allows it
    # the example policies allow DP off: the effective setting is carried on
    open_fed = load_federation(REPO / "sites", REPO / "policies")
    assert preflight(options, open_fed).dp is False


def _ledger_objects(runs: Path) -> dict[str, bytes]:
    state = runs / ".state"
    return {
        p.relative_to(state).as_posix(): p.read_bytes()
        for p in sorted(state.rglob("*"))
        if p.is_file() and "/ledger/" in p.as_posix()
    }


@pytest.fixture()
def no_servers(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Records (and stops) any attempt to start or connect the object stores."""
    started: list[str] = []

    def refuse(self, *args, **kwargs):
        started.append("object stores")
        raise RuntimeError("the run started its object stores")

    monkeypatch.setattr(stores_mod.LocalStores, "start", refuse)
    monkeypatch.setattr(stores_mod.LocalStores, "connect", refuse)
    return started


def _cli(tmp_path: Path, policies: Path, *params: str) -> int:
    args = ["run", "--local", "--rounds", "1", "--isolation", "process", "--run-id", "t-1"]
    args += ["--sites", str(REPO / "sites"), "--policies", str(policies)]
    args += ["--runs-dir", str(tmp_path / "runs")]
    for p in params:
        args += ["--param", p]
    return main(args)


def test_cli_dp_off_parameter_refused_before_anything_runs_ledgers_unchanged(
    tmp_path: Path, no_servers: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    runs = tmp_path / "runs"
    earlier = runs / ".state/s3/hospital-paris-fl/ledger/hospital-paris/earlier/round-0001"
    earlier.mkdir(parents=True)
    (earlier / "attempt-0001.json").write_bytes(b'{"an": "earlier entry"}')
    before = _ledger_objects(runs)
    code = _cli(tmp_path, _strict_policies(tmp_path), "dp_enabled=false")
    err = capsys.readouterr().err
    assert code == 2, err
    assert "--param dp_enabled=false refused" in err and "hospital-berlin (policy eu-health)" in err
    assert no_servers == []  # no object store, so no task, ever started
    assert not (runs / "t-1").exists()  # no run folder either
    assert _ledger_objects(runs) == before and len(before) == 1


@pytest.mark.parametrize(
    ("param", "named"),
    [
        ("nosuch=1", "--param nosuch: the compiled pipeline has no such parameter"),
        ("noise_multiplier=-0.5", "--param noise_multiplier=-0.5: must be a finite number > 0"),
        ("local_epochs=0", "--param local_epochs=0: must be an integer >= 1"),
    ],
)
def test_cli_bad_parameters_refused_before_the_servers_start(
    tmp_path: Path,
    no_servers: list[str],
    capsys: pytest.CaptureFixture[str],
    param: str,
    named: str,
) -> None:
    code = _cli(tmp_path, REPO / "policies", param)
    err = capsys.readouterr().err
    assert code == 2 and named in err, err
    assert no_servers == [] and not (tmp_path / "runs" / "t-1").exists()


def test_python_dash_m_cli_refuses_with_the_message_and_exit_code_2(tmp_path: Path) -> None:
    import subprocess
    import sys

    args = ["run", "--local", "--runs-dir", str(tmp_path), "--param", "nosuch=1"]
    args += ["--sites", str(REPO / "sites"), "--policies", str(REPO / "policies")]
    done = subprocess.run(
        [sys.executable, "-m", "pipelines.cli", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 2, done.stderr[-2000:]
    assert done.stderr.startswith("fedpipe run: error: run parameters refused before anything")
    assert "--param nosuch: the compiled pipeline has no such parameter" in done.stderr
    assert "Traceback" not in done.stderr
    assert list(tmp_path.iterdir()) == []  # nothing started: no run folder, no state


def test_preflight_refuses_a_rule_or_server_optimizer_that_cannot_run_under_he(
    tmp_path: Path,
) -> None:
    policies = tmp_path / "policies"
    shutil.copytree(REPO / "policies", policies)
    for name in ("eu-health.yaml", "us-health.yaml"):
        path = policies / name
        path.write_text(
            path.read_text().replace("aggregation:\n", "aggregation:\n  protection: he\n")
        )
    federation = load_federation(REPO / "sites", policies)
    assert preflight(RunOptions(rounds=1), federation).dp is True  # fedavg: fine
    with pytest.raises(RunError) as refused:
        preflight(RunOptions(rounds=1, overrides={"rule": "median"}), federation)
    assert "refused before anything started" in str(refused.value)
    assert "rule 'median' cannot run with aggregation.protection he" in str(refused.value)
    with pytest.raises(RunError, match="server_optimizer 'fedadam'"):
        preflight(RunOptions(rounds=1, overrides={"server_optimizer": "fedadam"}), federation)
    plain = load_federation(REPO / "sites", REPO / "policies")
    assert preflight(RunOptions(rounds=1, overrides={"rule": "median"}), plain).dp is True
