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
    from components.evaluate.executor import run

    run(
        site_id=site_id,
        policy_digest=policy_digest,
        data_snapshot=data_snapshot,
        site_json=site_json,
        policy_json=policy_json,
        run_id=run_id,
        kfp_job_id=kfp_job_id,
        round_index=round_index,
        dataset=dataset,
        model_name=model_name,
        global_model=global_model.path,
        evaluation=evaluation.path,
    )


declare_output_classes(evaluate, OUTPUT_CLASSES)
