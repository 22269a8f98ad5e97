"""`fedpipe run` argument helpers and the runner's small guards."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from pipelines.commands.run import parse_value
from pipelines.local_run.guards import sigterm_as_interrupt, update_latest
from pipelines.local_run.options import (
    RunError,
    RunOptions,
    check_run_id,
    compiled_setting,
    pipeline_arguments,
)
from pipelines.local_run.runner import compile_federation
from tests.support.paths import REPO


def test_param_values_keep_json_objects_as_text() -> None:
    assert parse_value("5") == 5 and parse_value("0.5") == 0.5 and parse_value("true") is True
    assert parse_value("mlp") == "mlp" and parse_value('"mlp"') == "mlp"
    assert parse_value('{"momentum": 0.5}') == '{"momentum": 0.5}'


def test_run_ids_are_checked() -> None:
    assert check_run_id("local-1") == "local-1"
    for bad in ("", "Upper", "a/b", "-x", "x" * 64):
        with pytest.raises(RunError, match="run-id"):
            check_run_id(bad)


def test_pipeline_arguments_only_name_declared_parameters() -> None:
    params = {"run_id": "", "dp_enabled": True, "seed": 0.0, "local_epochs": 1.0}
    options = RunOptions(dp=False, seed=3, overrides={"local_epochs": 2, "nope": 1})
    args, unknown = pipeline_arguments(params, "r1", options)
    assert args == {"run_id": "r1", "dp_enabled": False, "seed": 3, "local_epochs": 2}
    assert unknown == ["nope"]


def test_sigterm_becomes_an_interrupt_and_the_handler_is_restored() -> None:
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(KeyboardInterrupt), sigterm_as_interrupt():
        os.kill(os.getpid(), signal.SIGTERM)
        signal.sigtimedwait([], 0.5)  # give the handler a chance to run
    assert signal.getsignal(signal.SIGTERM) == before


def test_latest_link_is_replaced(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    update_latest(tmp_path, "a")
    update_latest(tmp_path, "b")
    assert os.readlink(tmp_path / "latest") == "b"


def test_settings_come_from_the_compiled_pipeline_without_fallbacks() -> None:
    settings = {"batch_size": 16, "learning_rate": 0.05, "local_epochs": None}
    assert compiled_setting(settings, "batch_size") == 16
    with pytest.raises(RunError, match="'local_epochs'"):
        compiled_setting(settings, "local_epochs")
    with pytest.raises(RunError, match="'nope'"):
        compiled_setting(settings, "nope")


def test_compile_is_called_directly_and_returns_the_spec(tmp_path: Path) -> None:
    from pipelines.compiler import PIPELINE_FILE
    from pipelines.local_run.options import pipeline_parameters

    path, spec, platform = compile_federation(
        REPO / "sites", REPO / "policies", tmp_path / "out", 1
    )
    assert path == tmp_path / "out" / PIPELINE_FILE and path.is_file()
    assert (tmp_path / "out" / "residency-report.md").is_file()
    params = pipeline_parameters(spec)
    assert params["batch_size"] is not None and params["learning_rate"] is not None
    assert "kubernetes" in platform["platforms"]


def test_compile_errors_become_run_errors(tmp_path: Path) -> None:
    with pytest.raises(RunError, match="compile failed"):
        compile_federation(tmp_path / "no-sites", REPO / "policies", tmp_path / "out", 1)
    assert not (tmp_path / "out").exists()
