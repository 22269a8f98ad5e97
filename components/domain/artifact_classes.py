"""Residency classes of the artifacts that flow between fedpipe tasks."""

from __future__ import annotations

from enum import StrEnum


class ArtifactClass(StrEnum):
    """What an artifact is, for the residency checker (DESIGN, "Residency is a type")."""

    RAW_DATA = "raw_data"
    LOCAL_MODEL = "local_model"
    VALIDATION_SUMMARY = "validation_summary"
    DP_UPDATE = "dp_update"
    GLOBAL_MODEL = "global_model"
    METRICS = "metrics"


# Metadata key under which a component output declares its class (in the component spec).
ARTIFACT_CLASS_KEY = "fedpipe.artifact_class"
