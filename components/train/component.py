"""`train` (site): local Keras training with DP-SGD from the current global model."""

from kfp import dsl
from kfp.dsl import Artifact, Input, Model, Output

from components.common.artifact_classes import ArtifactClass
from components.common.declare import declare_output_classes
from components.common.image import FEDPIPE_IMAGE

OUTPUT_CLASSES = {"local_model": ArtifactClass.LOCAL_MODEL}


@dsl.component(base_image=FEDPIPE_IMAGE, install_kfp_package=False)
def train(
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
    local_epochs: int,
    batch_size: int,
    learning_rate: float,
    noise_multiplier: float,
    l2_norm_clip: float,
    dp_enabled: bool,
    seed: int,
    validation: Input[Artifact],
    global_model: Input[Model],
    local_model: Output[Model],
):
    """Train locally (DP-SGD), account epsilon in the site's ledger; the model stays on site."""
    arguments = dict(locals())
    from components.common.kfp_args import plain_arguments
    from components.train.executor import run

    run(**plain_arguments(arguments))


declare_output_classes(train, OUTPUT_CLASSES)
