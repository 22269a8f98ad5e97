"""`aggregate` (coordinator, fan-in): verify the sites' DP updates, combine, publish the model.

The signature is generated per federation (`components/common/fanin.py`): one `update_<i>` input per
site, `i` 1-based in the order of `site_ids`; the body hands the executor
`updates={site_id: path}` (components/CONTRACT.md). With `secagg=True` (a federation whose
policies ask `aggregation.protection: secagg`) it also takes `secagg_json`, one `answer_<i>`
per site (the site's unmasking answer) and the round's `request`, and the executor unmasks
the sum (`components/aggregation/secure.py`).
"""

import json
from collections.abc import Sequence

from components.common.image import FEDPIPE_IMAGE
from components.domain.artifact_classes import ArtifactClass

OUTPUT_CLASSES = {
    "global_model": ArtifactClass.GLOBAL_MODEL,
    "round_report": ArtifactClass.METRICS,
}

# Plain-value inputs, in signature order: (name, annotation).
PARAMETERS: tuple[tuple[str, str], ...] = (
    ("coordinator_json", "str"),
    ("sites_json", "str"),
    ("policies_json", "str"),
    ("config_digest", "str"),
    ("run_id", "str"),
    ("kfp_job_id", "str"),
    ("round_index", "int"),
    ("rule", "str"),
    ("rule_params_json", "str"),
    ("server_optimizer", "str"),
    ("server_learning_rate", "float"),
    ("optimizer_params_json", "str"),
    ("min_sites", "int"),
)


def update_input(index: int) -> str:
    """Name of the generated input for the `index`-th site (1-based)."""
    return f"update_{index}"


def answer_input(index: int) -> str:
    """Name of the generated unmasking-answer input of the `index`-th site (secagg)."""
    return f"answer_{index}"


def build(site_ids: Sequence[str], secagg: bool = False):
    """The aggregate component for `site_ids` (one update input per site, in that order).

    Its executor regenerates the function in the image (`function(site_ids)`) instead of
    carrying the generated source.
    """
    from components.common.fanin import fanin_component

    args = json.dumps(list(site_ids)) + (", secagg=True" if secagg else "")
    program = f"from {__name__} import function\naggregate = function({args})\n"
    return fanin_component(
        **_generated(site_ids, secagg),
        base_image=FEDPIPE_IMAGE,
        output_classes=OUTPUT_CLASSES,
        program=program,
    )


def function(site_ids: Sequence[str], secagg: bool = False):
    """The generated component function for `site_ids` (what `build` declares)."""
    from components.common.fanin import function_source, load_function

    return load_function("aggregate", function_source(**_generated(site_ids, secagg)))


def _generated(site_ids: Sequence[str], secagg: bool = False) -> dict:
    """name, params, docstring and body of the generated function."""
    from components.common.fanin import Param, call_lines, dict_literal

    if not site_ids:
        raise ValueError("aggregate: a federation needs at least one site")
    updates = {site: f"{update_input(i)}.path" for i, site in enumerate(site_ids, start=1)}
    params = [Param(n, a) for n, a in PARAMETERS]
    params.append(Param("previous_model", "Input[Model]"))
    params += [Param(update_input(i), "Input[Artifact]") for i in range(1, len(site_ids) + 1)]
    if secagg:
        params.append(Param("secagg_json", "str"))
        params += [Param(answer_input(i), "Input[Artifact]") for i in range(1, len(site_ids) + 1)]
        params.append(Param("request", "Input[Artifact]"))
    params += [Param("global_model", "Output[Model]"), Param("round_report", "Output[Artifact]")]
    kwargs = [(n, n) for n, _ in PARAMETERS]
    kwargs += [
        ("previous_model", "previous_model.path"),
        ("updates", dict_literal(updates)),
        ("global_model", "global_model.path"),
        ("round_report", "round_report.path"),
    ]
    if secagg:
        answers = {site: f"{answer_input(i)}.path" for i, site in enumerate(site_ids, start=1)}
        kwargs += [
            ("answers", dict_literal(answers)),
            ("request", "request.path"),
            ("secagg_json", "secagg_json"),
        ]
    body = ["from components.aggregation.executor import run", "", *call_lines("run", kwargs)]
    return {
        "name": "aggregate",
        "params": params,
        "docstring": "Aggregate the sites' verified DP updates into the next global model.",
        "body": body,
    }
