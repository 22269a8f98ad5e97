"""The inputs of a per-site task, parsed and cross-checked once into a `SiteTask` (pure).

`parse_site_task` rebuilds the site and its governing policy from the task's JSON inputs
once, binds the dataset's data contract when the stage reads data, and refuses inputs that
disagree (another site's spec, a policy that is not the site's, a digest that does not match
the policy, a dataset the site does not hold): such a task was wired wrongly or tampered
with, and must not act on the site's bucket. `TaskInputError` is the one error for all of it.
The executors take the `SiteTask` (TFX's `FnArgs`) plus their artifact paths.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any, TypeVar

from components.datasets.site import SiteData
from components.domain.canonical import policy_digest as digest_of
from components.domain.canonical import sha256_hex
from components.domain.contract import DataContract
from components.domain.models import Policy, Site
from components.domain.run_id import RunIdError, effective_run_id


class TaskInputError(ValueError):
    """A per-site task's inputs that are inconsistent or malformed (names site and field):
    a compile or wiring bug, never the site's data."""


@dataclass(frozen=True)
class RunSettings:
    """The run's settings a stage takes (pipeline parameters, via validate's admission);
    None where the stage does not take one (export takes none)."""

    dataset: str | None = None
    rounds: int | None = None
    model_name: str | None = None
    local_epochs: int | None = None
    batch_size: int | None = None
    learning_rate: float | None = None
    noise_multiplier: float | None = None
    l2_norm_clip: float | None = None
    dp_enabled: bool | None = None
    dp_sampling: str | None = None
    seed: int | None = None


# The data contract's JSON (validate: a compiled pipeline input checked against the constant
# `contract_digest`; train and evaluate: from validate's admission). Optional: export and the
# coordinator's tasks read no data.
CONTRACT_INPUTS = ("contract_json", "contract_digest")

COMMON_INPUTS = (
    "site_id",
    "policy_digest",
    "data_snapshot",
    "site_json",
    "policy_json",
    "run_id",
    "kfp_job_id",
    "round_index",
)
SETTING_INPUTS = tuple(f.name for f in fields(RunSettings))


@dataclass(frozen=True)
class SiteTask:
    """A per-site task's checked inputs, built once (`parse_site_task`).

    site: the task's site; policy: its governing policy; run_id: the effective run id;
    round_index: 1-based; data: the dataset's contract and the site's table URIs (stages that
    read data: validate, train, evaluate), else None; policy_digest: the compiled digest
    (export signs it into the manifest); settings: the stage's run settings.
    """

    site: Site
    policy: Policy
    run_id: str
    round_index: int
    data: SiteData | None = None
    policy_digest: str = ""
    settings: RunSettings = field(default_factory=RunSettings)

    @property
    def site_id(self) -> str:
        return self.site.id

    def site_data(self) -> SiteData:
        """`data`, or TaskInputError when the task was built without a dataset."""
        if self.data is None:
            raise TaskInputError(f"site {self.site.id}: this task was built without a dataset")
        return self.data

    def require(self, *names: str) -> None:
        """TaskInputError naming the run settings among `names` this task was not given."""
        missing = [n for n in names if getattr(self.settings, n) is None]
        if missing:
            raise TaskInputError(f"site {self.site.id}: task inputs lack the settings {missing}")


def parse_contract(site_id: str, contract_json: str, contract_digest: str | None) -> DataContract:
    """The task's data contract from its JSON; TaskInputError when it is not a contract or
    its sha256 is not the compiled `contract_digest` (edited in the run form)."""
    if contract_digest is not None and sha256_hex(contract_json) != contract_digest:
        raise TaskInputError(
            f"site {site_id}: contract_json is not the compiled data contract (sha256 "
            f"{sha256_hex(contract_json)[:12]}..., compiled {contract_digest[:12]}...); "
            "recompile instead of editing config_contract in the run form"
        )
    try:
        return DataContract.parse_raw(contract_json)
    except ValueError as exc:
        raise TaskInputError(
            f"site {site_id}: contract_json is not a valid DataContract: {exc}"
        ) from None


def bind_dataset(site: Site, dataset: str, contract: DataContract | None) -> SiteData:
    """The data contract (named `dataset`) and the site's table URIs; TaskInputError when the
    site holds no data or names another contract, or no contract came with the task."""
    if site.data is None:
        raise TaskInputError(f"site {site.id}: the site spec has no `data` (a coordinator?)")
    if site.data.contract != dataset:
        raise TaskInputError(
            f"site {site.id}: task dataset {dataset!r} differs from the site's data.contract "
            f"{site.data.contract!r}"
        )
    if contract is None:
        raise TaskInputError(
            f"site {site.id}: task inputs lack contract_json (the data contract {dataset!r})"
        )
    if contract.name != dataset:
        raise TaskInputError(
            f"site {site.id}: contract_json is contract {contract.name!r}, the task's dataset "
            f"is {dataset!r}"
        )
    return SiteData(site, contract, site.data.uri, site.data.holdout_uri)


def split_task_inputs(inputs: Mapping[str, Any]) -> tuple[SiteTask, dict[str, Any]]:
    """(the SiteTask built once from the common inputs and run settings in `inputs`, the
    other inputs: the stage's artifact paths and test hooks). TaskInputError as
    `parse_site_task`, or when a common input is missing."""
    missing = [n for n in COMMON_INPUTS if n not in inputs]
    if missing:
        raise TaskInputError(f"site {inputs.get('site_id', '?')}: task inputs lack {missing}")
    settings = {n: inputs[n] for n in (*SETTING_INPUTS, *CONTRACT_INPUTS) if n in inputs}
    task = parse_site_task(**{n: inputs[n] for n in COMMON_INPUTS}, **settings)
    rest = {k: v for k, v in inputs.items() if k not in COMMON_INPUTS and k not in settings}
    return task, rest


R = TypeVar("R")


def call_with_task(run: Callable[..., R], inputs: Mapping[str, Any]) -> R:
    """`run(task, **paths)`: an executor called with the SiteTask built once from a
    component's flat `inputs` (`split_task_inputs`) and the remaining artifact paths."""
    task, paths = split_task_inputs(inputs)
    return run(task, **paths)


def parse_site_task(
    *,
    site_id: str,
    policy_digest: str,
    site_json: str,
    policy_json: str,
    run_id: str,
    kfp_job_id: str,
    round_index: int,
    data_snapshot: str = "",
    contract_json: str | None = None,
    contract_digest: str | None = None,
    **settings: Any,
) -> SiteTask:
    """Parse and cross-check the common inputs of a per-site task; TaskInputError if they
    disagree (site id, role, the site's policy id, policy digest, run id, round, dataset).

    `settings`: the stage's run settings (`RunSettings` fields); with `dataset` the task also
    carries its data contract (`contract_json`, checked against `contract_digest` when given)
    and table URIs (`data`). `data_snapshot` is a cache key only.
    policy_json arrives as a pipeline input (`config_policy_<id>`, editable in the run form);
    policy_digest is a compiled constant, so an edited policy is refused here.
    """
    del data_snapshot  # a cache key only
    try:
        site = Site.parse_raw(site_json)
    except ValueError as exc:
        raise TaskInputError(f"site {site_id}: site_json is not a valid Site: {exc}") from None
    if site.id != site_id:
        raise TaskInputError(
            f"site_json describes site {site.id!r}, task input site_id {site_id!r}"
        )
    if site.role != "site":
        raise TaskInputError(f"site {site_id}: role is {site.role!r}; this task runs on sites")
    try:
        policy = Policy.parse_raw(policy_json)
    except ValueError as exc:
        raise TaskInputError(f"site {site_id}: policy_json is not a valid Policy: {exc}") from None
    if policy.id != site.policy:
        raise TaskInputError(
            f"site {site_id}: policy_json is policy {policy.id!r}, the site is governed by "
            f"{site.policy!r}"
        )
    actual = digest_of(policy)
    if actual != policy_digest:
        raise TaskInputError(
            f"site {site_id}: policy_digest input {policy_digest[:12]}... does not match policy "
            f"{policy.id!r} (sha256 {actual[:12]}...)"
        )
    if round_index < 1:
        raise TaskInputError(f"site {site_id}: round_index {round_index} must be >= 1")
    try:
        effective = effective_run_id(run_id, kfp_job_id, f"site {site_id}")
    except RunIdError as exc:
        raise TaskInputError(str(exc)) from None
    unknown = sorted(set(settings) - set(SETTING_INPUTS))
    if unknown:
        raise TaskInputError(f"site {site_id}: unknown task inputs {unknown}")
    run = RunSettings(**settings)
    contract = (
        parse_contract(site_id, contract_json, contract_digest)
        if contract_json is not None
        else None
    )
    data = bind_dataset(site, run.dataset, contract) if run.dataset is not None else None
    return SiteTask(site, policy, effective, round_index, data, policy_digest, run)
