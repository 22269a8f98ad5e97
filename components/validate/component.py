"""`validate` (site): Great Expectations on the site's data; only a sanitized summary leaves."""

from kfp import dsl
from kfp.dsl import Artifact, Output

from components.common.artifact_classes import ArtifactClass
from components.common.declare import declare_output_classes
from components.common.image import FEDPIPE_IMAGE

OUTPUT_CLASSES = {"summary": ArtifactClass.VALIDATION_SUMMARY}


@dsl.component(base_image=FEDPIPE_IMAGE, install_kfp_package=False)
def validate(
    site_id: str,
    policy_digest: str,
    data_snapshot: str,
    site_json: str,
    policy_json: str,
    run_id: str,
    kfp_job_id: str,
    round_index: int,
    dataset: str,
    rounds: int,
    batch_size: int,
    local_epochs: int,
    noise_multiplier: float,
    dp_enabled: bool,
    summary: Output[Artifact],
):
    """Validate the site's data against its data contract; writes summary.json only.

    Also the run's privacy pre-flight: fails (naming the site) when `rounds` rounds at these
    DP settings would exceed the site's lifetime epsilon, before any site trains.
    """
    arguments = dict(locals())
    from components.common.kfp_args import plain_arguments
    from components.validate.executor import run

    run(**plain_arguments(arguments))


declare_output_classes(validate, OUTPUT_CLASSES)
