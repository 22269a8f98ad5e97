"""`export` (site): sign the DP update and write it create-only to the site's own bucket.

`export_encrypted` is the same component whose `update` is declared a `masked_update`: under
`aggregation.protection: he` the site publishes a CKKS ciphertext of its update (which reveals
nothing without the sites' secret key), and the residency checker judges that edge as such.
`export_masked` (aggregation.protection secagg): the SecAgg+-masked, quantized update
(`components/export/masked.py`), also a `masked_update`.
"""

from components.common.declare import declare_output_classes
from components.common.module_component import module_component
from components.domain.artifact_classes import ArtifactClass
from components.export import entry

OUTPUT_CLASSES = {"update": ArtifactClass.DP_UPDATE}
ENCRYPTED_OUTPUT_CLASSES = {"update": ArtifactClass.MASKED_UPDATE}

export = module_component(entry.export)
declare_output_classes(export, OUTPUT_CLASSES)
export_encrypted = module_component(entry.export)
declare_output_classes(export_encrypted, ENCRYPTED_OUTPUT_CLASSES)

# secagg: the masked update reveals nothing alone (artifact class masked_update)
MASKED_OUTPUT_CLASSES = {"update": ArtifactClass.MASKED_UPDATE}
export_masked = module_component(entry.export_masked)
declare_output_classes(export_masked, MASKED_OUTPUT_CLASSES)
