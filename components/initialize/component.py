"""`initialize` (coordinator): the run's starting global model (seeded init or resume)."""

from components.common.declare import declare_output_classes
from components.common.module_component import module_component
from components.domain.artifact_classes import ArtifactClass
from components.initialize import entry

OUTPUT_CLASSES = {"global_model": ArtifactClass.GLOBAL_MODEL}

initialize = module_component(entry.initialize)
declare_output_classes(initialize, OUTPUT_CLASSES)
