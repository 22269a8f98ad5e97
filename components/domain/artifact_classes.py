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
    # A SecAgg+-masked or CKKS-encrypted update: reveals nothing alone (only a sum of enough
    # of them, unmasked with the sites' help, or decrypted by a site, does).
    MASKED_UPDATE = "masked_update"
    # SecAgg+ protocol messages: signed public keys, rosters, requests, shares sealed for one
    # receiver, a holder's answer.
    SECAGG_PUBLIC = "secagg_public"
    # DP-noised, clipped per-feature sums, sums of squares and counts of a site's training rows
    # (the `federated_zscore` statistics round), charged to the site's ledger before release.
    FEATURE_STATS = "feature_stats"


# Classes whose destinations fall back to other classes' rules when a policy lists none for
# them: a masked update reveals less than a DP update, so it may go where a DP update may;
# protocol messages travel where updates and global models travel; DP-noised feature
# statistics (a DP release charged to the ledger, like an update) where a DP update may. Rules of their own, when
# listed, replace the fallback.
FALLBACK_CLASSES: dict[str, tuple[str, ...]] = {
    ArtifactClass.MASKED_UPDATE.value: (ArtifactClass.DP_UPDATE.value,),
    ArtifactClass.SECAGG_PUBLIC.value: (
        ArtifactClass.DP_UPDATE.value,
        ArtifactClass.GLOBAL_MODEL.value,
    ),
    # DP-noised statistics, charged to the same ledger as DP updates: where DP updates may go.
    ArtifactClass.FEATURE_STATS.value: (ArtifactClass.DP_UPDATE.value,),
}


# Metadata key under which a component output declares its class (in the component spec).
ARTIFACT_CLASS_KEY = "fedpipe.artifact_class"
