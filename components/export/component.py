"""`export` (site): sign the DP update and write it create-only to the site's own bucket."""

from kfp import dsl
from kfp.dsl import Artifact, Input, Model, Output

from components.common.artifact_classes import ArtifactClass
from components.common.declare import declare_output_classes
from components.common.image import FEDPIPE_IMAGE

OUTPUT_CLASSES = {"update": ArtifactClass.DP_UPDATE}


@dsl.component(base_image=FEDPIPE_IMAGE, install_kfp_package=False)
def export(
    site_id: str,
    policy_digest: str,
    data_snapshot: str,
    site_json: str,
    policy_json: str,
    run_id: str,
    kfp_job_id: str,
    round_index: int,
    local_model: Input[Model],
    global_model: Input[Model],
    update: Output[Artifact],
):
    """Export the signed model delta to the site's bucket; the artifact is a reference (ref.json)."""
    arguments = dict(locals())
    from components.common.kfp_args import plain_arguments
    from components.export.executor import run

    run(**plain_arguments(arguments))


declare_output_classes(export, OUTPUT_CLASSES)
