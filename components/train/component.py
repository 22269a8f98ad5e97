"""`train` (site): local Keras training with DP-SGD from the current global model."""

from components.common.declare import declare_output_classes
from components.common.module_component import module_component
from components.domain.artifact_classes import ArtifactClass
from components.train import entry

OUTPUT_CLASSES = {"local_model": ArtifactClass.LOCAL_MODEL}

train = module_component(entry.train)
declare_output_classes(train, OUTPUT_CLASSES)
