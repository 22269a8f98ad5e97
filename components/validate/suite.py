"""The Great Expectations (1.x) suite of a data contract, and the sanitized summary.

`expectation_specs` (pure) lists the checks of a contract; `run_suite` runs them with GX in an
ephemeral context on a pandas DataFrame; `sanitize_result` / `summarize` (pure) keep, per
expectation, only its name, success and unexpected count: GX's `partial_unexpected_list`,
`unexpected_list`, `unexpected_index_list`, `observed_value`, `exception_info` (tracebacks can
quote values) and every other field are dropped by construction (a whitelist, not a blacklist).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

from components.domain.contract import Column, DataContract

MAX_CHECKS_IN_REASON = 8


@dataclass(frozen=True)
class ExpectationSpec:
    """One GX expectation: its class name in `great_expectations.expectations` and kwargs."""

    gx_class: str
    kwargs: dict[str, Any]


@dataclass(frozen=True)
class Outcome:
    """What leaves the site about one expectation."""

    name: str
    success: bool
    unexpected_count: int | None

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "success": self.success,
            "unexpected_count": self.unexpected_count,
        }


FLOAT_TYPES = ("float64", "float32", "int64", "int32")
INT_TYPES = ("int64", "int32")
# a nullable int column reads as float64 when it holds an empty cell (pandas); integrality is
# then checked by the array conversion
NULLABLE_INT_TYPES = ("int64", "int32", "float64")
BOOL_TYPES = ("bool", "int64", "int32")
STR_TYPES = ("object", "str", "string")


def column_types(column: Column) -> list[str]:
    """The pandas dtypes a column of the contract may be read as."""
    if column.type == "float":
        return list(FLOAT_TYPES)
    if column.type == "int":
        return list(NULLABLE_INT_TYPES if column.nullable else INT_TYPES)
    if column.type == "bool":
        return list(BOOL_TYPES)
    cats = column.categories or []
    if all(isinstance(c, int) for c in cats):
        return list(NULLABLE_INT_TYPES if column.nullable else INT_TYPES)
    return list(STR_TYPES)


def _column_specs(column: Column) -> list[ExpectationSpec]:
    name = column.name
    specs = [
        ExpectationSpec("ExpectColumnToExist", {"column": name}),
        ExpectationSpec(
            "ExpectColumnValuesToBeInTypeList", {"column": name, "type_list": column_types(column)}
        ),
    ]
    if not column.nullable:
        specs.append(ExpectationSpec("ExpectColumnValuesToNotBeNull", {"column": name}))
    if column.type in ("float", "int"):
        low, high = column.range  # type: ignore[misc]
        specs.append(
            ExpectationSpec(
                "ExpectColumnValuesToBeBetween",
                {"column": name, "min_value": low, "max_value": high},
            )
        )
    elif column.type == "category":
        specs.append(
            ExpectationSpec(
                "ExpectColumnValuesToBeInSet",
                {"column": name, "value_set": list(column.categories or [])},
            )
        )
    elif column.type == "bool":
        specs.append(
            ExpectationSpec(
                "ExpectColumnValuesToBeInSet", {"column": name, "value_set": [True, False, 0, 1]}
            )
        )
    return specs


def expectation_specs(contract: DataContract, min_rows: int | None = None) -> list[ExpectationSpec]:
    """The contract's checks: exact column set, row count, then per column existence, dtype,
    no nulls (unless nullable), range or category set; the target's type, no nulls, and its
    class set (classification) or range (regression)."""
    specs = [
        ExpectationSpec(
            "ExpectTableColumnsToMatchSet",
            {"column_set": contract.table_columns, "exact_match": True},
        ),
        ExpectationSpec(
            "ExpectTableRowCountToBeBetween",
            {"min_value": contract.min_rows if min_rows is None else min_rows},
        ),
    ]
    for column in contract.columns:
        specs += _column_specs(column)
    label = contract.label
    specs += [
        ExpectationSpec("ExpectColumnToExist", {"column": label}),
        ExpectationSpec(
            "ExpectColumnValuesToBeInTypeList",
            {
                "column": label,
                "type_list": list(FLOAT_TYPES if contract.is_regression else INT_TYPES),
            },
        ),
        ExpectationSpec("ExpectColumnValuesToNotBeNull", {"column": label}),
    ]
    if contract.is_regression:
        low, high = contract.target.range  # type: ignore[misc]
        specs.append(
            ExpectationSpec(
                "ExpectColumnValuesToBeBetween",
                {"column": label, "min_value": low, "max_value": high},
            )
        )
    else:
        specs.append(
            ExpectationSpec(
                "ExpectColumnValuesToBeInSet", {"column": label, "value_set": list(contract.labels)}
            )
        )
    return specs


def column_set_notes(contract: DataContract, columns: Sequence[str]) -> list[str]:
    """Readable notes on a table's header against the contract: missing and extra columns
    (names only: a header is schema, not data)."""
    wanted = contract.table_columns
    missing = [c for c in wanted if c not in columns]
    extra = [str(c) for c in columns if c not in wanted]
    notes = []
    if missing:
        notes.append(f"missing column(s) {', '.join(missing[:8])}")
    if extra:
        notes.append(f"extra column(s) {', '.join(extra[:8])} (not in the contract)")
    return notes


def expectation_name(expectation_type: str, kwargs: Mapping[str, Any]) -> str:
    """Stable display name: `expect_column_values_to_not_be_null(label)` / table-level type."""
    column = kwargs.get("column")
    return f"{expectation_type}({column})" if column is not None else expectation_type


def _count(value: Any) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return int(value)


def sanitize_result(result: Mapping[str, Any]) -> Outcome:
    """One GX result (its `to_json_dict()`) reduced to name, success, unexpected count.

    An expectation that raised inside GX counts as failed with unexpected_count None.
    """
    config = result.get("expectation_config") or {}
    name = expectation_name(str(config.get("type", "unknown")), config.get("kwargs") or {})
    raised = bool((result.get("exception_info") or {}).get("raised_exception", False))
    # GX nests exception_info per metric when a metric failed to resolve.
    info = result.get("exception_info") or {}
    raised = raised or any(
        isinstance(v, Mapping) and v.get("raised_exception") for v in info.values()
    )
    success = bool(result.get("success")) and not raised
    count = None if raised else _count((result.get("result") or {}).get("unexpected_count"))
    return Outcome(name=name, success=success, unexpected_count=count)


def summarize(
    site_id: str,
    row_count: int | None,
    outcomes: Sequence[Outcome],
    notes: Sequence[str] = (),
) -> dict[str, Any]:
    """The `summary.json` body (components/CONTRACT.md, validate); `notes` (e.g.
    `column_set_notes`) are appended to the reason of a failed validation."""
    ordered = sorted(outcomes, key=lambda o: ("(" in o.name, o.name))  # table-level checks first
    failed = [o.name for o in ordered if not o.success]
    reason = None
    if failed:
        shown = ", ".join(failed[:MAX_CHECKS_IN_REASON])
        more = len(failed) - MAX_CHECKS_IN_REASON
        reason = (
            f"site {site_id} abstains: {len(failed)} of {len(ordered)} data checks failed: "
            f"{shown}{f' (+{more} more)' if more > 0 else ''}"
        )
        if notes:
            reason += "; " + "; ".join(notes)
    return {
        "site_id": site_id,
        "passed": not failed and bool(ordered),
        "row_count": row_count,
        "expectations": [o.to_json() for o in ordered],
        "reason": reason,
    }


def abstention(site_id: str, reason: str, row_count: int | None = None) -> dict[str, Any]:
    """A summary for a site whose data could not be validated at all (unreadable, empty...)."""
    return {
        "site_id": site_id,
        "passed": False,
        "row_count": row_count,
        "expectations": [],
        "reason": f"site {site_id} abstains: {reason}",
    }


def run_suite(
    contract: DataContract, frame: pd.DataFrame, *, min_rows: int | None = None
) -> list[Outcome]:
    """Validate `frame` with GX (ephemeral context, no progress bars); sanitized outcomes.

    Raw GX results never leave this function.
    """
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False, metric_calculations=False)
    batch_definition = (
        context.data_sources.add_pandas("site")
        .add_dataframe_asset("table")
        .add_batch_definition_whole_dataframe("all")
    )
    suite = gx.ExpectationSuite(name=f"fedpipe-{contract.name}")
    for spec in expectation_specs(contract, min_rows):
        suite.add_expectation(getattr(gx.expectations, spec.gx_class)(**spec.kwargs))
    suite = context.suites.add(suite)
    batch = batch_definition.get_batch(batch_parameters={"dataframe": frame})
    result = batch.validate(suite, result_format="BASIC")
    return [sanitize_result(r.to_json_dict()) for r in result.results]
