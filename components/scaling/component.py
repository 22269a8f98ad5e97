"""`scaling` (coordinator, fan-in, only for a `federated_zscore` contract): combine the sites'
DP-noised feature statistics into the global mean and std and publish them.

The signature is generated per federation (`components/common/fanin.py`): one `stats_<i>`
input per site (its `ref.json`, `i` 1-based in the order of `site_ids`). initialize runs after
it and puts the published statistics into the global model's metadata, which every site's
train and evaluate then scale with.
"""

import json
from collections.abc import Sequence

from components.common.image import FEDPIPE_IMAGE
from components.domain.artifact_classes import ArtifactClass

# the published mean/std: derived from DP releases only, and it travels with the global model
OUTPUT_CLASSES = {"scaling": ArtifactClass.GLOBAL_MODEL}

PARAMETERS: tuple[tuple[str, str], ...] = (
    ("coordinator_json", "str"),
    ("sites_json", "str"),
    ("contract_json", "str"),
    ("config_digest", "str"),
    ("run_id", "str"),
    ("kfp_job_id", "str"),
    ("min_sites", "int"),
)


def stats_input(index: int) -> str:
    """Name of the generated statistics input of the `index`-th site (1-based)."""
    return f"stats_{index}"


def build(site_ids: Sequence[str]):
    """The scaling component for `site_ids` (its executor regenerates the function)."""
    from components.common.fanin import fanin_component

    program = f"from {__name__} import function\nscaling = function({json.dumps(list(site_ids))})\n"
    return fanin_component(
        **_generated(site_ids),
        base_image=FEDPIPE_IMAGE,
        output_classes=OUTPUT_CLASSES,
        program=program,
    )


def function(site_ids: Sequence[str]):
    """The generated component function for `site_ids` (what `build` declares)."""
    from components.common.fanin import function_source, load_function

    return load_function("scaling", function_source(**_generated(site_ids)))


def _generated(site_ids: Sequence[str]) -> dict:
    from components.common.fanin import Param, call_lines, dict_literal

    if not site_ids:
        raise ValueError("scaling: a federation needs at least one site")
    sites = list(enumerate(site_ids, start=1))
    params = [Param(n, a) for n, a in PARAMETERS]
    params += [Param(stats_input(i), "Input[Artifact]") for i, _ in sites]
    params.append(Param("scaling", "Output[Artifact]"))
    kwargs = [(n, n) for n, _ in PARAMETERS]
    kwargs += [
        ("stats", dict_literal({s: f"{stats_input(i)}.path" for i, s in sites})),
        ("scaling", "scaling.path"),
    ]
    body = ["from components.scaling.executor import run", "", *call_lines("run", kwargs)]
    return {
        "name": "scaling",
        "params": params,
        "docstring": "Global feature mean/std from the sites' DP-noised statistics, published "
        "to the coordinator's bucket (federated_zscore).",
        "body": body,
    }
