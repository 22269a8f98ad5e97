"""`validate` (site): Great Expectations on the site's data; only a sanitized summary leaves."""

from components.common.declare import declare_output_classes
from components.common.module_component import module_component
from components.domain.artifact_classes import ArtifactClass
from components.validate import entry

OUTPUT_CLASSES = {"summary": ArtifactClass.VALIDATION_SUMMARY}

validate = module_component(entry.validate)
declare_output_classes(validate, OUTPUT_CLASSES)
