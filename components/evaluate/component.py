"""`evaluate` (site): score the global model on the site's holdout; only metrics leave."""

from kfp import dsl
from kfp.dsl import Artifact, Input, Model, Output

from components.common.artifact_classes import ArtifactClass
from components.common.declare import declare_output_classes
from components.common.image import FEDPIPE_IMAGE

OUTPUT_CLASSES = {"evaluation": ArtifactClass.METRICS}


@dsl.component(base_image=FEDPIPE_IMAGE, install_kfp_package=False)
def evaluate(
    site_id: str,
    policy_digest: str,
    data_snapshot: str,
    site_json: str,
    policy_json: str,
    run_id: str,
    kfp_job_id: str,
    round_index: int,
    dataset: str,
    model_name: str,
    global_model: Input[Model],
    evaluation: Output[Artifact],
):
    """Evaluate the round's global model on the site's holdout; writes metrics.json."""
    arguments = dict(locals())
    from components.common.kfp_args import plain_arguments
    from components.evaluate.executor import run

    run(**plain_arguments(arguments))


declare_output_classes(evaluate, OUTPUT_CLASSES)
