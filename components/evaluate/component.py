"""`evaluate` (site): score the global model on the site's holdout; only metrics leave."""

from components.common.declare import declare_output_classes
from components.common.module_component import module_component
from components.domain.artifact_classes import ArtifactClass
from components.evaluate import entry

OUTPUT_CLASSES = {"evaluation": ArtifactClass.METRICS}

evaluate = module_component(entry.evaluate)
declare_output_classes(evaluate, OUTPUT_CLASSES)
