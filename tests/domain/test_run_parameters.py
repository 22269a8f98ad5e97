"""Value rules of the run parameters (pure, hand-checked values)."""

from __future__ import annotations

import math

import pytest

from components.domain.run_parameters import (
    VALUE_RULES,
    RunParameterError,
    check_values,
    choice_rule,
    rule_violation,
    violations,
)


def test_negative_zero_and_non_finite_noise_multipliers_are_refused() -> None:
    rule = VALUE_RULES["noise_multiplier"]
    assert rule_violation("noise_multiplier", 1.5, rule) is None
    assert rule_violation("noise_multiplier", 2, rule) is None  # an int is a number
    for bad in (-1.0, 0.0, 0, math.nan, math.inf, "1.5", True):
        problem = rule_violation("noise_multiplier", bad, rule)
        assert problem is not None and problem.startswith(f"run parameter noise_multiplier={bad!r}")
        assert "> 0" in problem


def test_integer_bounds_and_types() -> None:
    assert violations({"local_epochs": 1, "batch_size": 1, "seed": 0}) == []
    assert violations({"local_epochs": 0, "batch_size": 2.5, "seed": -1}) == [
        "run parameter batch_size=2.5: must be an integer >= 1",
        "run parameter local_epochs=0: must be an integer >= 1",
        "run parameter seed=-1: must be an integer >= 0",
    ]
    assert violations({"dp_enabled": 0}) == ["run parameter dp_enabled=0: must be true or false"]


def test_json_objects_and_choices() -> None:
    assert violations({"rule_params_json": '{"beta": 0.1}', "optimizer_params_json": "{}"}) == []
    assert len(violations({"rule_params_json": "[1]", "optimizer_params_json": "{nope"})) == 2
    rule = choice_rule(["median", "fedavg"])
    assert rule_violation("rule", "fedavg", rule) is None
    assert rule_violation("rule", "fedavgg", rule) == (
        "run parameter rule='fedavgg': must be one of fedavg, median"
    )


def test_parameters_without_a_rule_pass_and_check_values_lists_all() -> None:
    assert violations({"model_name": "anything", "run_id": ""}) == []
    with pytest.raises(RunParameterError) as refused:
        check_values({"learning_rate": -0.1, "l2_norm_clip": 0.0})
    assert str(refused.value) == (
        "run parameter l2_norm_clip=0.0: must be a finite number > 0 (the per-example clipping "
        "norm); run parameter learning_rate=-0.1: must be a finite number > 0 (the local SGD "
        "step)"
    )


def test_dp_sampling_is_poisson_or_shuffle() -> None:
    from components.domain.run_parameters import violations

    assert violations({"dp_sampling": "poisson"}) == violations({"dp_sampling": "shuffle"}) == []
    (problem,) = violations({"dp_sampling": "uniform"})
    assert "dp_sampling='uniform'" in problem and "poisson" in problem
