"""Parse `--param key=value` pairs against the pipeline's root parameters. Pure.

Values are converted to the parameter's KFP type (`NUMBER_INTEGER` → int, `NUMBER_DOUBLE` →
float, `BOOLEAN` → bool from true/false/1/0/yes/no, `STRUCT`/`LIST` → JSON, otherwise str).
With the parameter list, a value must also keep its value rule
(`components.domain.run_parameters`, e.g. `noise_multiplier` > 0). Without a parameter list
(the host did not return the spec) values stay strings, except booleans and numbers written
as JSON literals.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any

from components.domain.run_parameters import VALUE_RULES, rule_violation
from pipelines.kfp_ops.digest import PipelineParameter

_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off"}


class ParamError(ValueError):
    """A `--param` the pipeline cannot take; the message names it."""


def _convert(name: str, value: str, kind: str) -> Any:
    try:
        if kind == "NUMBER_INTEGER":
            return int(value)
        if kind == "NUMBER_DOUBLE":
            return float(value)
        if kind == "BOOLEAN":
            low = value.strip().lower()
            if low in _TRUE | _FALSE:
                return low in _TRUE
            raise ValueError("expected true or false")
        if kind in ("STRUCT", "LIST"):
            return json.loads(value)
    except ValueError as exc:
        raise ParamError(f"--param {name}={value!r}: not a valid {kind}: {exc}") from exc
    return value


def _literal(value: str) -> Any:
    low = value.strip().lower()
    if low in ("true", "false"):
        return low == "true"
    try:
        parsed = json.loads(value)
    except ValueError:
        return value
    return parsed if isinstance(parsed, int | float) else value


def parse_params(
    pairs: Iterable[str], parameters: Sequence[PipelineParameter] | None
) -> dict[str, Any]:
    """`["rounds=3", ...]` → `{"rounds": 3}`, checked against `parameters` when given."""
    by_name = {p.name: p for p in parameters} if parameters is not None else None
    out: dict[str, Any] = {}
    for pair in pairs:
        name, eq, value = pair.partition("=")
        name = name.strip()
        if not eq or not name:
            raise ParamError(f"--param {pair!r}: expected key=value")
        if name in out:
            raise ParamError(f"--param {name}: given twice")
        if by_name is None:
            out[name] = _literal(value)
        elif name not in by_name:
            raise ParamError(
                f"--param {name}: the pipeline has no such parameter; it has: "
                + ", ".join(sorted(by_name))
            )
        else:
            out[name] = _convert(name, value, by_name[name].type)
            rule = VALUE_RULES.get(name)
            problem = rule_violation(name, out[name], rule) if rule is not None else None
            if problem is not None:  # e.g. a negative noise multiplier: refused before upload
                raise ParamError(problem.replace("run parameter ", "--param ", 1))
    return out
