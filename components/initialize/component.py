"""`initialize` (coordinator, fan-in): the run's starting global model (seeded init or resume),
once the sites' validations show that the quorum can hold.

The signature is generated per federation (`components/common/fanin.py`): one
`validation_<i>` input per site (its validation summary, `i` 1-based in the order of
`site_ids`). Every train needs initialize's model, so nobody trains before every site's
validate finished (budget pre-flight, DP-off decision) and initialize found enough sites
taking part (`components.aggregation.quorum.check_run_quorum`).
"""

import json
from collections.abc import Sequence

from components.common.image import FEDPIPE_IMAGE
from components.domain.artifact_classes import ArtifactClass

OUTPUT_CLASSES = {"global_model": ArtifactClass.GLOBAL_MODEL}

# Plain-value inputs, in signature order: (name, annotation).
PARAMETERS: tuple[tuple[str, str], ...] = (
    ("coordinator_json", "str"),
    ("contract_json", "str"),
    ("config_digest", "str"),
    ("run_id", "str"),
    ("kfp_job_id", "str"),
    ("model_name", "str"),
    ("dataset", "str"),
    ("seed", "int"),
    ("resume", "bool"),
    ("min_sites", "int"),
)


def validation_input(index: int) -> str:
    """Name of the generated validation input of the `index`-th site (1-based)."""
    return f"validation_{index}"


def build(site_ids: Sequence[str]):
    """The initialize component for `site_ids`; its executor regenerates the function in the
    image (`function(site_ids)`) instead of carrying the generated source."""
    from components.common.fanin import fanin_component

    program = (
        f"from {__name__} import function\ninitialize = function({json.dumps(list(site_ids))})\n"
    )
    return fanin_component(
        **_generated(site_ids),
        base_image=FEDPIPE_IMAGE,
        output_classes=OUTPUT_CLASSES,
        program=program,
    )


def function(site_ids: Sequence[str]):
    """The generated component function for `site_ids` (what `build` declares)."""
    from components.common.fanin import function_source, load_function

    return load_function("initialize", function_source(**_generated(site_ids)))


def _generated(site_ids: Sequence[str]) -> dict:
    """name, params, docstring and body of the generated function."""
    from components.common.fanin import Param, call_lines, dict_literal

    if not site_ids:
        raise ValueError("initialize: a federation needs at least one site")
    sites = list(enumerate(site_ids, start=1))
    params = [Param(n, a) for n, a in PARAMETERS]
    params += [Param(validation_input(i), "Input[Artifact]") for i, _ in sites]
    params.append(Param("global_model", "Output[Model]"))
    kwargs = [(n, n) for n, _ in PARAMETERS]
    kwargs += [
        ("validations", dict_literal({s: f"{validation_input(i)}.path" for i, s in sites})),
        ("global_model", "global_model.path"),
    ]
    body = ["from components.initialize.executor import run", "", *call_lines("run", kwargs)]
    return {
        "name": "initialize",
        "params": params,
        "docstring": "Seeded initial global model, or (resume) the latest one from the "
        "coordinator's bucket, once enough sites can take part.",
        "body": body,
    }
