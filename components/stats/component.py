"""`stats` (site, once per run, only for a `federated_zscore` contract): the site's DP-noised
feature statistics, charged to its ledger, written create-only to its own bucket."""

from components.common.declare import declare_output_classes
from components.common.module_component import module_component
from components.domain.artifact_classes import ArtifactClass
from components.stats import entry

OUTPUT_CLASSES = {"stats": ArtifactClass.FEATURE_STATS}

stats = module_component(entry.stats)
declare_output_classes(stats, OUTPUT_CLASSES)
