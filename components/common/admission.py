"""What `validate` admits for the run, handed to the site's later tasks (pure).

`validate` receives the compiled site spec, its policy and the run's settings; after it has
checked them (digests, data contract, privacy pre-flight) it emits one JSON string output,
the admission: `{"site": Site, "policy": Policy, "contract": DataContract, "run": {RUN_FIELDS}}`. The site's `train`,
`export` and `evaluate` tasks take that one parameter instead of a dozen inputs each, so they
act on exactly the settings the budget pre-flight checked, and the compiled YAML stays small
(each task also keeps its explicit cache keys: site id, policy digest, data snapshot, round).
The admission never leaves the site: parameter edges may not cross placements
(`pipelines/flows.py`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from components.common.kfp_args import plain_arguments
from components.common.site_task import TaskInputError
from components.domain.canonical import canonical_dumps
from components.domain.run_parameters import RunParameterError, violations

# The run's settings an admission carries (pipeline parameters, as validate received them).
RUN_FIELDS = (
    "run_id",
    "kfp_job_id",
    "dataset",
    "rounds",
    "model_name",
    "local_epochs",
    "batch_size",
    "learning_rate",
    "noise_multiplier",
    "l2_norm_clip",
    "dp_enabled",
    "dp_sampling",
    "seed",
)
_COMMON = ("run_id", "kfp_job_id")
# The run settings each later stage's executor takes (besides site_json and policy_json).
STAGE_RUN_FIELDS: dict[str, tuple[str, ...]] = {
    "train": tuple(f for f in RUN_FIELDS if f != "rounds"),  # every setting but the count
    "export": _COMMON,
    "evaluate": (*_COMMON, "dataset", "model_name"),
    "stats": (*_COMMON, "dataset", "dp_enabled"),
    "secagg": (*_COMMON, "rounds"),  # the SecAgg+ site steps (components/secagg_stages)
}
# validate's own executor inputs among the run settings (the rest only travel on).
VALIDATE_RUN_FIELDS = (
    *_COMMON,
    "dataset",
    "rounds",
    "batch_size",
    "local_epochs",
    "noise_multiplier",
    "dp_enabled",
)


# Stages that read data get the contract (as `contract_json`).
CONTRACT_STAGES = ("train", "evaluate", "stats")


def admission_json(
    site_json: str, policy_json: str, run: Mapping[str, Any], contract_json: str
) -> str:
    """The admission text (sorted keys, compact). KeyError names a missing run field."""
    missing = [f for f in RUN_FIELDS if f not in run]
    if missing:
        raise KeyError(f"admission: run settings missing {missing}")
    body = {
        "site": json.loads(site_json),
        "policy": json.loads(policy_json),
        "contract": json.loads(contract_json),
        "run": {f: run[f] for f in RUN_FIELDS},
    }
    return canonical_dumps(body)


def validate_arguments(arguments: Mapping[str, Any]) -> tuple[dict[str, Any], str]:
    """(validate executor kwargs, admission text) from validate's component arguments.

    `arguments` holds everything validate's component received except the `admission`
    output path, which the caller writes the text to after the executor succeeded.
    RunParameterError (naming the site and each parameter) when a run setting breaks its
    value rule (`components.domain.run_parameters`).
    """
    from components.validate.site_admission import AdmissionInputs

    args = plain_arguments({k: v for k, v in arguments.items() if k != "admission"})
    problems = violations({f: args[f] for f in RUN_FIELDS if f in args})
    if problems:  # e.g. a negative noise multiplier typed into the Kubeflow UI's run form
        raise RunParameterError(
            f"site {args.get('site_id', '?')}: refusing the run before anything is read: "
            + "; ".join(problems)
        )
    text = admission_json(args["site_json"], args["policy_json"], args, args["contract_json"])
    keep = {"site_id", "policy_digest", "data_snapshot", "site_json", "policy_json"}
    keep |= {"contract_json", "contract_digest"}
    keep |= {"round_index", "summary", *VALIDATE_RUN_FIELDS}
    kwargs = {k: v for k, v in args.items() if k in keep}
    kwargs["admission"] = AdmissionInputs(
        image=args["image"], rule=args["rule"], coordinator_json=args["coordinator_json"]
    )
    return kwargs, text


def stage_arguments(arguments: Mapping[str, Any], stage: str) -> dict[str, Any]:
    """Executor kwargs for `stage` (train, export, evaluate) from its component arguments:
    `admission` replaced by `site_json`, `policy_json` and the stage's run settings, plus
    `audit=True` (the stage writes its audit events).

    TaskInputError (naming the site) when the admission is not an admission.
    """
    args = plain_arguments(arguments)
    site_id = args.get("site_id", "?")
    try:
        doc = json.loads(args.pop("admission"))
        site, policy, run = doc["site"], doc["policy"], doc["run"]
        fields = {f: run[f] for f in STAGE_RUN_FIELDS[stage]}
        if stage in CONTRACT_STAGES:
            fields["contract_json"] = canonical_dumps(doc["contract"])
    except (KeyError, TypeError, ValueError) as exc:
        raise TaskInputError(
            f"site {site_id}: {stage} input `admission` is not validate's admission "
            f"(missing or malformed {exc}); wire it from this site's validate task"
        ) from None
    args["site_json"] = canonical_dumps(site)
    args["policy_json"] = canonical_dumps(policy)
    # the stage appends its events to the site's audit chain (components.audit.events)
    return {**args, **fields, "audit": True}
