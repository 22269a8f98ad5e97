"""`fedpipe --help` and the command pages: one help line per command, the module's own."""

import importlib

import pytest

from pipelines.cli import COMMANDS, main


def _help(argv: list[str], capsys) -> str:
    with pytest.raises(SystemExit) as exit_info:
        main([*argv, "--help"])
    assert exit_info.value.code == 0
    return " ".join(capsys.readouterr().out.split())  # argparse wraps at the terminal width


def test_listing_lines_are_the_modules_help():
    for name, (module_name, line) in COMMANDS.items():
        assert line == importlib.import_module(module_name).HELP, name


def test_top_level_help_points_to_command_pages(capsys):
    out = _help([], capsys)
    assert "`fedpipe COMMAND --help`" in out
    assert "he-setup" in out and "doctor" in out


def test_he_setup_page_says_where_the_files_go(capsys):
    out = _help(["he-setup"], capsys)
    assert "he-context.secret" in out and "he/context.secret" in out
    assert "fedpipe doctor" in out
    assert "--out OUT" in out and "refused if it already holds context files" in out


def test_doctor_page_lists_its_checks(capsys):
    out = _help(["doctor"], capsys)
    assert "CKKS context" in out and "own-policy ConfigMap" in out
    assert "Kubernetes API server port (default 443)" in out
