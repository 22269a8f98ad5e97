"""`export` (site): sign the DP update and write it create-only to the site's own bucket."""

from components.common.declare import declare_output_classes
from components.common.module_component import module_component
from components.domain.artifact_classes import ArtifactClass
from components.export import entry

OUTPUT_CLASSES = {"update": ArtifactClass.DP_UPDATE}

export = module_component(entry.export)
declare_output_classes(export, OUTPUT_CLASSES)
