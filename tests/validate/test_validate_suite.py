"""Pure parts of validation: the suite built from a contract and the sanitizer (no GX run)."""

from __future__ import annotations

import json

from components.validate.suite import (
    Outcome,
    abstention,
    expectation_specs,
    sanitize_result,
    summarize,
)
from pipelines.config.loader import contract_by_name


def test_suite_covers_every_column():
    specs = expectation_specs(contract_by_name("breast_cancer"))
    assert len(specs) == 2 + 4 * 30 + 4
    by_class = {}
    for spec in specs:
        by_class.setdefault(spec.gx_class, []).append(spec.kwargs)
    assert by_class["ExpectTableRowCountToBeBetween"] == [{"min_value": 30}]
    assert {k["column"] for k in by_class["ExpectColumnValuesToNotBeNull"]} == set(
        contract_by_name("breast_cancer").table_columns
    )
    assert by_class["ExpectColumnValuesToBeInSet"] == [{"column": "label", "value_set": [0, 1]}]
    radius = [k for k in by_class["ExpectColumnValuesToBeBetween"] if k["column"] == "mean_radius"]
    assert radius == [{"column": "mean_radius", "min_value": 0.0, "max_value": 50.0}]
    digits = expectation_specs(contract_by_name("digits"), min_rows=7)
    assert len(digits) == 2 + 4 * 64 + 4
    assert digits[1].kwargs == {"min_value": 7}


def test_suite_follows_column_types_nulls_and_a_regression_target():
    from components.domain.contract import DataContract

    contract = DataContract.parse_obj(
        {
            "apiVersion": "fedpipe.dev/v1",
            "kind": "DataContract",
            "name": "toy",
            "columns": [
                {"name": "age", "type": "int", "range": [0, 120], "nullable": True, "impute": 50},
                {"name": "smoker", "type": "bool"},
                {"name": "blood", "type": "category", "categories": ["A", "B"]},
            ],
            "target": {"name": "y", "task": "regression", "range": [0, 10]},
            "rows": {"min_train": 5, "min_holdout": 2},
            "encoding": {"scaling": "fixed"},
        }
    )
    specs = [(s.gx_class, s.kwargs) for s in expectation_specs(contract)]
    not_null = {k["column"] for c, k in specs if c == "ExpectColumnValuesToNotBeNull"}
    assert not_null == {"smoker", "blood", "y"}  # age is nullable
    assert ("ExpectColumnValuesToBeInSet", {"column": "blood", "value_set": ["A", "B"]}) in specs
    assert (
        "ExpectColumnValuesToBeBetween",
        {"column": "y", "min_value": 0.0, "max_value": 10.0},
    ) in specs
    types = {
        k["column"]: k["type_list"] for c, k in specs if c == "ExpectColumnValuesToBeInTypeList"
    }
    assert types["age"] == ["int64", "int32", "float64"]  # an empty cell makes pandas read floats
    assert types["blood"] == ["object", "str", "string"]


# The shape of a GX 1.x result (`ExpectationValidationResult.to_json_dict()`), raw values in it.
RAW_RESULT = {
    "success": False,
    "expectation_config": {
        "type": "expect_column_values_to_be_between",
        "kwargs": {"column": "mean_radius", "min_value": 0.0, "max_value": 50.0, "batch_id": "b"},
        "meta": {},
    },
    "result": {
        "element_count": 100,
        "unexpected_count": 2,
        "unexpected_percent": 2.0,
        "partial_unexpected_list": [123.456, 987.654],
        "partial_unexpected_counts": [{"value": 123.456, "count": 1}],
        "partial_unexpected_index_list": [3, 9],
        "unexpected_list": [123.456, 987.654],
        "unexpected_index_list": [3, 9],
        "observed_value": 987.654,
        "missing_count": 0,
    },
    "meta": {},
    "exception_info": {"raised_exception": False, "exception_traceback": None},
}

RAISED_RESULT = {
    "success": False,
    "expectation_config": {
        "type": "expect_column_values_to_not_be_null",
        "kwargs": {"column": "x"},
    },
    "result": {},
    "exception_info": {
        "MetricConfigurationID(...)": {
            "exception_traceback": "Traceback ... value 123.456 ...",
            "exception_message": "column x has 123.456",
            "raised_exception": True,
        }
    },
}


def test_sanitize_keeps_only_name_success_count():
    outcome = sanitize_result(RAW_RESULT)
    assert outcome == Outcome("expect_column_values_to_be_between(mean_radius)", False, 2)
    assert set(outcome.to_json()) == {"name", "success", "unexpected_count"}
    text = json.dumps(outcome.to_json())
    assert "123.456" not in text and "987.654" not in text


def test_sanitize_raised_expectation_is_a_failure_without_details():
    outcome = sanitize_result(RAISED_RESULT)
    assert outcome == Outcome("expect_column_values_to_not_be_null(x)", False, None)
    assert "123.456" not in json.dumps(outcome.to_json())


def test_summarize_pass_and_fail():
    ok = summarize("site-a", 40, [Outcome("b(x)", True, 0), Outcome("a", True, None)])
    assert ok == {
        "site_id": "site-a",
        "passed": True,
        "row_count": 40,
        "expectations": [
            {"name": "a", "success": True, "unexpected_count": None},
            {"name": "b(x)", "success": True, "unexpected_count": 0},
        ],
        "reason": None,
    }
    failing = [Outcome(f"check_{i}(c)", False, 1) for i in range(10)] + [Outcome("t", False, None)]
    bad = summarize("site-a", 40, failing)
    assert bad["passed"] is False
    assert bad["reason"].startswith(
        "site site-a abstains: 11 of 11 data checks failed: t, check_0(c)"
    )
    assert bad["reason"].endswith("(+3 more)")


def test_empty_suite_does_not_pass_and_abstention_shape():
    assert summarize("s", 0, [])["passed"] is False
    body = abstention("s", "data check 'readable' failed: x")
    assert body == {
        "site_id": "s",
        "passed": False,
        "row_count": None,
        "expectations": [],
        "reason": "site s abstains: data check 'readable' failed: x",
    }
