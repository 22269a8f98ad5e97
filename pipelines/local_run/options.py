"""The run object of `fedpipe run --local`: options, result, errors, pipeline arguments.

Pure: nothing here touches files, processes or servers.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pipelines.config.loader import Federation

RUN_ID_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")


class RunError(Exception):
    """A local run that cannot start or that failed; the message says what and where."""


@dataclass
class RunOptions:
    """Options of `fedpipe run --local` (see pipelines/commands/run.py for the flags)."""

    rounds: int = 5
    dataset: str = "breast_cancer"
    split: str = "iid"
    alpha: float = 0.5
    dp: bool = True
    run_id: str | None = None
    sites_dir: Path = Path("sites")
    policies_dir: Path = Path("policies")
    runs_dir: Path = Path("runs")
    seed: int = 0
    baseline: bool = True
    workers: int = field(default_factory=lambda: len(os.sched_getaffinity(0)))  # tasks at once
    isolation: str = "warm"  # "warm" (forks of a warm worker) or "process" (kfp.local's way)
    task_timeout_s: float | None = 3600.0  # a task running longer is killed and fails
    overrides: dict[str, Any] = field(default_factory=dict)  # extra pipeline parameters
    task_env: dict[str, str] = field(default_factory=dict)  # extra env of every task (bench)
    data_dir: Path | None = None  # --data: DIR/<site-id>/{train,holdout}.{csv,parquet}
    # --own-policies: the sites' own copies of their policies (uploaded at site setup; default:
    # the compiled policies_dir), e.g. stricter than what the pipeline is compiled from
    own_policies_dir: Path | None = None


@dataclass
class RunResult:
    """Where a finished run's outputs are, plus its summary and timings."""

    run_id: str
    run_dir: Path
    summary: dict[str, Any]
    timings: dict[str, float]
    task_seconds: dict[str, float]
    task_body_seconds: dict[str, float | None] = field(default_factory=dict)


def default_run_id(now: datetime | None = None) -> str:
    """`local-YYYYMMDD-HHMMSS` (UTC)."""
    return (now or datetime.now(UTC)).strftime("local-%Y%m%d-%H%M%S")


def check_run_id(run_id: str) -> str:
    if not RUN_ID_RE.fullmatch(run_id):
        raise RunError(f"--run-id {run_id!r}: use 1-63 characters a-z, 0-9 and '-'")
    return run_id


def effective_dp(options: RunOptions) -> bool:
    """Whether the run trains with DP: `--no-dp` and `--param dp_enabled=...` both ask; they
    must agree. RunError when they contradict each other."""
    asked = options.overrides.get("dp_enabled", None)
    if asked is None:
        return options.dp
    if not isinstance(asked, bool):
        raise RunError(f"--param dp_enabled={asked!r}: must be true or false")
    if not options.dp and asked:
        raise RunError("--no-dp and --param dp_enabled=true contradict each other; use one")
    return asked


def check_dp_off_allowed(federation: Federation, dp_enabled: bool, asked_by: str) -> None:
    """DP off only when every member site's governing policy sets dp.allow_dp_off
    (`components.privacy.dp_off.decide_dp_off`, the run's one DP-off decision)."""
    from components.privacy.dp_off import decide_dp_off

    policies = {sid: federation.policy_of(sid) for sid in federation.sites}
    decision = decide_dp_off(dp_enabled, policies, asked_by)
    if not decision.allowed:
        raise RunError(str(decision.reason))


# KFP parameter types of the compiled pipeline -> the value kind a run argument must have
_KFP_KINDS = {"NUMBER_INTEGER": "int", "NUMBER_DOUBLE": "float", "BOOLEAN": "bool", "STRING": "str"}
CONFIG_PREFIX = "config_"


def parameter_types(spec: dict[str, Any]) -> dict[str, str]:
    """{name: KFP parameterType} of the compiled pipeline's root inputs."""
    params = ((spec.get("root") or {}).get("inputDefinitions") or {}).get("parameters") or {}
    return {name: str(p.get("parameterType", "STRING")) for name, p in params.items()}


def run_parameter_rules(builders: Sequence[str] = ()) -> dict[str, Any]:
    """The value rules of the run parameters (`components.domain.run_parameters`) plus the
    choices of model_name (the registry and the contracts' `model.builder`s), rule and
    server_optimizer, read from their registries."""
    from components.aggregation.rules import RULES
    from components.aggregation.server_optimizers import OPTIMIZERS
    from components.domain.run_parameters import VALUE_RULES, choice_rule
    from components.train.models import REGISTRY

    return {
        **VALUE_RULES,
        "model_name": choice_rule([*REGISTRY, *builders]),
        "rule": choice_rule(list(RULES)),
        "server_optimizer": choice_rule(list(OPTIMIZERS)),
    }


def argument_problems(
    types: dict[str, str], arguments: dict[str, Any], rules: dict[str, Any]
) -> list[str]:
    """What is wrong with `arguments` ({name: value}) for a pipeline whose root inputs are
    `types` ({name: KFP parameterType}): unknown names (with the known ones), the compiled
    configuration (`config_*`), values of the wrong type, values breaking their rule
    (`components.domain.run_parameters`). Each problem names its parameter."""
    from components.domain.run_parameters import ValueRule, rule_violation

    knobs = sorted(n for n in types if not n.startswith(CONFIG_PREFIX))
    problems = []
    for name in sorted(arguments):
        value = arguments[name]
        if name not in types:
            problems.append(
                f"--param {name}: the compiled pipeline has no such parameter; it has "
                + ", ".join(knobs)
            )
            continue
        if name.startswith(CONFIG_PREFIX):
            problems.append(
                f"--param {name}: compiled configuration, not a run knob; edit sites/ or "
                "policies/ instead (tasks refuse a text whose digest differs)"
            )
            continue
        kind = _KFP_KINDS.get(types[name], "str")
        typed = ValueRule(kind, f"a {types[name]} value")
        problem = rule_violation(name, value, typed)
        if problem is None and name in rules:
            problem = rule_violation(name, value, rules[name])
        if problem is not None:
            problems.append(problem.replace("run parameter ", "--param ", 1))
    return problems


def check_contract(federation: Federation, options: RunOptions) -> None:
    """The run's data contract is loaded (`sites/contracts/<dataset>.yaml`) and, with DP on,
    scales with constants (a scaler fitted on a site's rows is outside the DP accounting)."""
    from components.domain.contract import ContractError, check_private_scaling

    contract = federation.contracts.get(options.dataset)
    if contract is None:
        known = ", ".join(sorted(federation.contracts)) or "none"
        raise RunError(
            f"--dataset {options.dataset}: no data contract {options.dataset!r} in "
            f"{options.sites_dir / 'contracts'} (known: {known})"
        )
    try:
        check_private_scaling(contract, options.dp)
    except ContractError as exc:
        raise RunError(f"{exc} (or pass --no-dp)") from None


def pipeline_parameters(spec: dict[str, Any]) -> dict[str, Any]:
    """{name: default} of the compiled pipeline's parameters (None when no default)."""
    params = ((spec.get("root") or {}).get("inputDefinitions") or {}).get("parameters") or {}
    return {name: p.get("defaultValue") for name, p in params.items()}


def pipeline_arguments(
    params: dict[str, Any], run_id: str, options: RunOptions
) -> tuple[dict[str, Any], list[str]]:
    """Arguments for the pipeline (only names it declares) and the names it did not know.

    The dataset's training recipe (`pipelines.local_run.recipes`) comes first; overrides win."""
    from pipelines.local_run.recipes import recipe_arguments

    wanted: dict[str, Any] = {"run_id": run_id, "dp_enabled": options.dp, "seed": options.seed}
    wanted["dataset"] = options.dataset
    wanted.update(recipe_arguments(options.dataset, params, options.overrides))
    wanted.update(options.overrides)
    args = {k: v for k, v in wanted.items() if k in params}
    unknown = sorted(k for k in options.overrides if k not in params)
    return args, unknown


def compiled_setting(settings: dict[str, Any], name: str) -> Any:
    """`settings[name]` (compiled default or argument); RunError when the pipeline has none."""
    value = settings.get(name)
    if value is None:
        raise RunError(f"the compiled pipeline has no value for parameter {name!r}")
    return value
