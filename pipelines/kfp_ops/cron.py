"""Validate KFP cron expressions (robfig/cron: 6 fields, seconds first). Pure, no I/O.

KFP's scheduled workflows parse `seconds minutes hours day-of-month month day-of-week`.
A classic 5-field crontab line would be read with its first field as seconds, so it is
refused with the 6-field form the user most likely meant.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# The descriptors robfig/cron accepts in place of the six fields.
DESCRIPTORS = frozenset(
    {"@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly"}
)
_EVERY = re.compile(r"^@every\s+(\d+(\.\d+)?(ns|us|µs|ms|s|m|h))+$")

_MONTHS = ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"]
_DAYS = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"]


@dataclass(frozen=True)
class _Field:
    name: str
    low: int
    high: int
    names: dict[str, int]
    question_mark: bool = False  # '?' allowed (day fields only)


FIELDS: tuple[_Field, ...] = (
    _Field("seconds", 0, 59, {}),
    _Field("minutes", 0, 59, {}),
    _Field("hours", 0, 23, {}),
    _Field("day-of-month", 1, 31, {}, question_mark=True),
    _Field("month", 1, 12, {m: i + 1 for i, m in enumerate(_MONTHS)}),
    _Field("day-of-week", 0, 6, {d: i for i, d in enumerate(_DAYS)}, question_mark=True),
)


class CronError(ValueError):
    """A cron expression KFP would refuse or misread; the message says how to fix it."""


def _value(text: str, field: _Field, expr: str) -> int:
    upper = text.upper()
    if upper in field.names:
        return field.names[upper]
    if not text.isdigit():
        raise CronError(f"cron {expr!r}: {field.name} field: {text!r} is not a number")
    value = int(text)
    if not field.low <= value <= field.high:
        raise CronError(
            f"cron {expr!r}: {field.name} field: {value} is outside {field.low}-{field.high}"
        )
    return value


def _check_field(text: str, field: _Field, expr: str) -> None:
    for item in text.split(","):
        if not item:
            raise CronError(f"cron {expr!r}: {field.name} field {text!r} has an empty list item")
        base, _, step = item.partition("/")
        if step and (not step.isdigit() or int(step) == 0):
            raise CronError(
                f"cron {expr!r}: {field.name} field: step {step!r} must be a positive integer"
            )
        if base == "*":
            continue
        if base == "?":
            if not field.question_mark:
                raise CronError(
                    f"cron {expr!r}: '?' is allowed only in day-of-month or day-of-week,"
                    f" not in {field.name}"
                )
            continue
        low_text, dash, high_text = base.partition("-")
        low = _value(low_text, field, expr)
        if dash:
            high = _value(high_text, field, expr)
            if low > high:
                raise CronError(f"cron {expr!r}: {field.name} field: range {base!r} runs backwards")


def validate_cron(expr: str) -> str:
    """Return `expr` normalised (single spaces) if KFP accepts it; raise `CronError` otherwise.

    Six space-separated fields, seconds first (`0 0 2 * * *` = every day at 02:00:00), or a
    robfig descriptor (`@daily`, `@every 6h`). A 5-field crontab line is refused with a hint.
    """
    fields = expr.split()
    text = " ".join(fields)
    if not fields:
        raise CronError("cron expression is empty; example: '0 0 2 * * *' (every day at 02:00)")
    if text.startswith("@"):
        if text in DESCRIPTORS or _EVERY.match(text):
            return text
        raise CronError(
            f"cron {expr!r}: unknown descriptor; use one of {sorted(DESCRIPTORS)} or '@every 1h'"
        )
    if len(fields) == 5:
        raise CronError(
            f"cron {expr!r} has 5 fields, but KFP cron has 6 with seconds first"
            f" (seconds minutes hours day-of-month month day-of-week):"
            f" did you mean '0 {text}'?"
        )
    if len(fields) != 6:
        raise CronError(
            f"cron {expr!r} has {len(fields)} fields; KFP cron needs 6, seconds first"
            " (seconds minutes hours day-of-month month day-of-week), e.g. '0 0 2 * * *'"
        )
    for part, field in zip(fields, FIELDS, strict=True):
        _check_field(part, field, expr)
    return text
