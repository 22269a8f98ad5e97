"""Cron validation: 6 fields, seconds first; 5-field lines refused with the 6-field form."""

from __future__ import annotations

import pytest

from pipelines.kfp_ops.cron import CronError, validate_cron


@pytest.mark.parametrize(
    "expr",
    [
        "0 0 2 * * *",
        "0 */15 * * * *",
        "30 0 9 ? * MON-FRI",
        "0 0 0 1,15 JAN,jul ?",
        "0 0 0 * * 0-6/2",
        "@daily",
        "@every 6h30m",
    ],
)
def test_accepts_kfp_expressions(expr: str) -> None:
    assert validate_cron(expr) == expr


def test_normalises_spaces() -> None:
    assert validate_cron("  0  0 2 * * * ") == "0 0 2 * * *"


def test_five_fields_show_the_six_field_form() -> None:
    with pytest.raises(CronError) as err:
        validate_cron("0 * * * *")
    assert "did you mean '0 0 * * * *'" in str(err.value)
    assert "seconds first" in str(err.value)


@pytest.mark.parametrize(
    ("expr", "fragment"),
    [
        ("60 0 2 * * *", "seconds field: 60 is outside 0-59"),
        ("0 0 24 * * *", "hours field: 24 is outside 0-23"),
        ("0 0 0 0 * *", "day-of-month field: 0 is outside 1-31"),
        ("0 0 0 * 13 *", "month field: 13 is outside 1-12"),
        ("0 0 0 * * 7", "day-of-week field: 7 is outside 0-6"),
        ("0 ? * * * *", "'?' is allowed only in day-of-month or day-of-week"),
        ("0 */0 * * * *", "step '0' must be a positive integer"),
        ("0 0 5-2 * * *", "range '5-2' runs backwards"),
        ("0 0 x * * *", "hours field: 'x' is not a number"),
        ("0 0 1,,2 * * *", "empty list item"),
        ("0 0 2 * * * *", "has 7 fields"),
        ("", "empty"),
        ("@sometimes", "unknown descriptor"),
    ],
)
def test_refuses_with_the_field_named(expr: str, fragment: str) -> None:
    with pytest.raises(CronError) as err:
        validate_cron(expr)
    assert fragment in str(err.value)
