"""Compatibility re-export: the site and policy models live in `components.domain.models`.

Kept so code written against `pipelines.config.models` keeps importing while branches in
flight merge; new code imports `components.domain.models`.
"""

from components.domain.models import (  # noqa: F401
    API_VERSION,
    ARTIFACT_CLASSES,
    Aggregation,
    DataSpec,
    DestinationRule,
    DPLimits,
    Encryption,
    Export,
    MetricsPolicy,
    ObjectStore,
    Placement,
    Policy,
    Retention,
    Rules,
    Signing,
    Site,
    Toleration,
)
