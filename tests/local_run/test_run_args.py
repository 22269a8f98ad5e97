"""`fedpipe run` argument helpers and the runner's small guards."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from pipelines.commands.run import parse_value
from pipelines.local_run.runner import (
    RunError,
    RunOptions,
    _sigterm_as_interrupt,
    check_run_id,
    pipeline_arguments,
    update_latest,
)


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
    with pytest.raises(KeyboardInterrupt), _sigterm_as_interrupt():
        os.kill(os.getpid(), signal.SIGTERM)
        signal.sigtimedwait([], 0.5)  # give the handler a chance to run
    assert signal.getsignal(signal.SIGTERM) == before


def test_latest_link_is_replaced(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    update_latest(tmp_path, "a")
    update_latest(tmp_path, "b")
    assert os.readlink(tmp_path / "latest") == "b"
