"""Value rules of the pipeline's run parameters (pure).

The compiled pipeline declares each knob's name and KFP type; `VALUE_RULES` adds what a
value must be beyond its type (a positive noise multiplier, at least one local epoch, ...).
The local runner checks `--param` values against both before it starts anything
(`pipelines.local_run.options.check_arguments`); `validate` checks the settings it receives
(a run started from the Kubeflow UI's form) before it reads data or the ledger. The choice
rules of `model_name`, `rule` and `server_optimizer` live beside their registries and are
added by the local runner (`choice_rule`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


class RunParameterError(ValueError):
    """A run parameter whose value breaks its rule; the message names the parameter."""


@dataclass(frozen=True)
class ValueRule:
    """What a parameter's value must be beyond its KFP type.

    kind: "int", "float", "bool" or "str"; minimum / exclusive: a lower bound (`> minimum`
    when exclusive, else `>= minimum`); choices: the accepted strings; json_object: a JSON
    object's text; what: how the rule reads in an error."""

    kind: str
    what: str
    minimum: float | None = None
    exclusive: bool = False
    choices: tuple[str, ...] | None = None
    json_object: bool = False


def _positive(what: str) -> ValueRule:
    return ValueRule("float", f"a finite number > 0 ({what})", minimum=0.0, exclusive=True)


VALUE_RULES: dict[str, ValueRule] = {
    "local_epochs": ValueRule("int", "an integer >= 1", minimum=1),
    "batch_size": ValueRule("int", "an integer >= 1", minimum=1),
    "learning_rate": _positive("the local SGD step"),
    "noise_multiplier": _positive("DP-SGD noise; to train without DP set dp_enabled=false"),
    "l2_norm_clip": _positive("the per-example clipping norm"),
    "server_learning_rate": _positive("the server optimizer's step"),
    "seed": ValueRule("int", "an integer >= 0", minimum=0),
    "dp_enabled": ValueRule("bool", "true or false"),
    "dp_sampling": ValueRule(
        "str",
        "poisson (epsilon proven) or shuffle (ledger marks it not proven)",
        choices=("poisson", "shuffle"),
    ),
    "resume": ValueRule("bool", "true or false"),
    "rule_params_json": ValueRule("str", "a JSON object, e.g. {}", json_object=True),
    "optimizer_params_json": ValueRule("str", "a JSON object, e.g. {}", json_object=True),
}


def choice_rule(choices: list[str] | tuple[str, ...]) -> ValueRule:
    """A string parameter that must be one of `choices`."""
    ordered = tuple(sorted(choices))
    return ValueRule("str", "one of " + ", ".join(ordered), choices=ordered)


def _kind_ok(kind: str, value: Any) -> bool:
    if kind == "bool":
        return isinstance(value, bool)
    if kind == "int":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "float":
        return isinstance(value, int | float) and not isinstance(value, bool)
    return isinstance(value, str)


def rule_violation(name: str, value: Any, rule: ValueRule) -> str | None:
    """None when `value` keeps `rule`, else the error naming the parameter."""
    bad = f"run parameter {name}={value!r}: must be {rule.what}"
    if not _kind_ok(rule.kind, value):
        return bad
    if rule.kind in ("int", "float"):
        number = float(value)
        if not math.isfinite(number):
            return bad
        if rule.minimum is not None:
            low = rule.minimum
            if (number <= low) if rule.exclusive else (number < low):
                return bad
    if rule.choices is not None and value not in rule.choices:
        return bad
    if rule.json_object:
        import json

        try:
            parsed = json.loads(value)
        except ValueError:
            return bad
        if not isinstance(parsed, dict):
            return bad
    return None


def violations(
    values: Mapping[str, Any], rules: Mapping[str, ValueRule] | None = None
) -> list[str]:
    """Every broken rule among `values` ({parameter: value}), in name order; parameters
    without a rule pass. `rules` defaults to `VALUE_RULES`."""
    table = VALUE_RULES if rules is None else rules
    found = []
    for name in sorted(values):
        rule = table.get(name)
        problem = rule_violation(name, values[name], rule) if rule is not None else None
        if problem is not None:
            found.append(problem)
    return found


def check_values(values: Mapping[str, Any], rules: Mapping[str, ValueRule] | None = None) -> None:
    """RunParameterError listing every broken rule among `values` (`violations`)."""
    problems = violations(values, rules)
    if problems:
        raise RunParameterError("; ".join(problems))
