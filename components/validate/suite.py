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

from components.datasets.contracts import LABEL, DataContract

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


def expectation_specs(contract: DataContract, min_rows: int | None = None) -> list[ExpectationSpec]:
    """The contract's checks: exact column set, row count, then per column existence, dtype,
    no nulls, range (features) or label set (label)."""
    specs = [
        ExpectationSpec(
            "ExpectTableColumnsToMatchSet", {"column_set": contract.columns, "exact_match": True}
        ),
        ExpectationSpec(
            "ExpectTableRowCountToBeBetween",
            {"min_value": contract.min_rows if min_rows is None else min_rows},
        ),
    ]
    for feature in contract.features:
        specs += [
            ExpectationSpec("ExpectColumnToExist", {"column": feature.name}),
            ExpectationSpec(
                "ExpectColumnValuesToBeInTypeList",
                {"column": feature.name, "type_list": list(contract.feature_dtypes)},
            ),
            ExpectationSpec("ExpectColumnValuesToNotBeNull", {"column": feature.name}),
            ExpectationSpec(
                "ExpectColumnValuesToBeBetween",
                {
                    "column": feature.name,
                    "min_value": feature.min_value,
                    "max_value": feature.max_value,
                },
            ),
        ]
    specs += [
        ExpectationSpec("ExpectColumnToExist", {"column": LABEL}),
        ExpectationSpec(
            "ExpectColumnValuesToBeInTypeList",
            {"column": LABEL, "type_list": list(contract.label_dtypes)},
        ),
        ExpectationSpec("ExpectColumnValuesToNotBeNull", {"column": LABEL}),
        ExpectationSpec(
            "ExpectColumnValuesToBeInSet", {"column": LABEL, "value_set": list(contract.labels)}
        ),
    ]
    return specs


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


def summarize(site_id: str, row_count: int | None, outcomes: Sequence[Outcome]) -> dict[str, Any]:
    """The `summary.json` body (components/CONTRACT.md, validate)."""
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
