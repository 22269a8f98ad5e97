"""Residency: the artifact-flow checker, static standard flows and the residency report."""

from pipelines.residency.checker import (
    FlowEdge,
    ResidencyDecision,
    ResidencyViolationError,
    check_flows,
    decide,
    enforce,
    violations,
)
from pipelines.residency.report import render_report_json, render_report_markdown, report_data
from pipelines.residency.standard import allowed_destinations, destination_table, standard_flows

__all__ = [
    "FlowEdge",
    "ResidencyDecision",
    "ResidencyViolationError",
    "allowed_destinations",
    "check_flows",
    "decide",
    "destination_table",
    "enforce",
    "render_report_json",
    "render_report_markdown",
    "report_data",
    "standard_flows",
    "violations",
]
