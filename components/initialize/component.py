"""`initialize` (coordinator): the run's starting global model (seeded init or resume)."""

from kfp import dsl
from kfp.dsl import Model, Output

from components.common.artifact_classes import ArtifactClass
from components.common.declare import declare_output_classes
from components.common.image import FEDPIPE_IMAGE

OUTPUT_CLASSES = {"global_model": ArtifactClass.GLOBAL_MODEL}


@dsl.component(base_image=FEDPIPE_IMAGE, install_kfp_package=False)
def initialize(
    coordinator_json: str,
    run_id: str,
    kfp_job_id: str,
    model_name: str,
    dataset: str,
    seed: int,
    resume: bool,
    global_model: Output[Model],
):
    """Seeded initial global model, or (resume) the latest one from the coordinator's bucket."""
    arguments = dict(locals())
    from components.common.kfp_args import plain_arguments
    from components.initialize.executor import run

    run(**plain_arguments(arguments))


declare_output_classes(initialize, OUTPUT_CLASSES)
