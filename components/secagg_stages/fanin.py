"""The SecAgg+ coordinator fan-in components, generated per federation
(`components/common/fanin.py`): `roster` (one `validation_<i>` input per site), `relay` (one
`shares_<i>`), `request` (one `update_<i>`: the masked exports). Their output is class
`secagg_public`. A module of its own: the executor program imports it at run time, where
the site components of `component.py` cannot be declared."""

import json
from collections.abc import Sequence

from components.common.image import FEDPIPE_IMAGE
from components.domain.artifact_classes import ArtifactClass

_COMMON: tuple[tuple[str, str], ...] = (
    ("coordinator_json", "str"),
    ("sites_json", "str"),
    ("policies_json", "str"),
    ("config_digest", "str"),
    ("run_id", "str"),
    ("kfp_job_id", "str"),
    ("secagg_json", "str"),
)
# step -> (extra parameters, per-site input prefix, the executor's dict keyword, output, doc)
STEPS: dict[str, tuple[tuple[tuple[str, str], ...], str, str, str, str]] = {
    "roster": (
        (("rounds", "int"),),
        "validation",
        "validations",
        "roster",
        "Verify the signed key advertisements of the sites that passed validation; publish "
        "each round's signed roster.",
    ),
    "relay": (
        (("rounds", "int"),),
        "shares",
        "shares",
        "relay",
        "Relay the sealed shares from the senders' buckets into the receivers' inboxes.",
    ),
    "request": (
        (("round_index", "int"), ("min_sites", "int")),
        "update",
        "updates",
        "request",
        "Name survivors and dropped sites of a round in a signed unmasking request.",
    ),
}


def site_input(step: str, index: int) -> str:
    """Name of the generated per-site input of `step` for the `index`-th site (1-based)."""
    return f"{STEPS[step][1]}_{index}"


def build(step: str, site_ids: Sequence[str]):
    """The coordinator component of `step` (roster, relay, request) for `site_ids`."""
    from components.common.fanin import fanin_component

    program = (
        f"from {__name__} import function\n"
        f"{step} = function({json.dumps(step)}, {json.dumps(list(site_ids))})\n"
    )
    return fanin_component(
        **_generated(step, site_ids),
        base_image=FEDPIPE_IMAGE,
        output_classes={STEPS[step][3]: ArtifactClass.SECAGG_PUBLIC},
        program=program,
    )


def function(step: str, site_ids: Sequence[str]):
    """The generated component function (what `build` declares)."""
    from components.common.fanin import function_source, load_function

    return load_function(step, function_source(**_generated(step, site_ids)))


def _generated(step: str, site_ids: Sequence[str]) -> dict:
    from components.common.fanin import Param, call_lines, dict_literal

    extra, prefix, keyword, output, doc = STEPS[step]
    sites = list(enumerate(site_ids, start=1))
    params = [Param(n, a) for n, a in (*_COMMON, *extra)]
    if step == "request":
        params.append(Param("previous_model", "Input[Model]"))
    params += [Param(f"{prefix}_{i}", "Input[Artifact]") for i, _ in sites]
    params.append(Param(output, "Output[Artifact]"))
    kwargs = [(n, n) for n, _ in (*_COMMON, *extra)]
    if step == "request":
        kwargs.append(("previous_model", "previous_model.path"))
    kwargs += [
        (keyword, dict_literal({s: f"{prefix}_{i}.path" for i, s in sites})),
        (output, f"{output}.path"),
    ]
    body = [
        f"from components.secagg_stages.coordinator import run_{step}",
        "",
        *call_lines(f"run_{step}", kwargs),
    ]
    return {"name": step, "params": params, "docstring": doc, "body": body}
