"""The federated-training DAG, unrolled at compile time from a `Federation`.

initialize (coordinator) → validate (each site, once per run) → per round r:
train → export (each site), aggregate (coordinator, fan-in), evaluate (each site, the new
global model) → report (coordinator, fan-in over all rounds).

Task names: `initialize`, `validate-<site>`, `train-<site>-r<r>`, `export-<site>-r<r>`,
`aggregate-r<r>`, `evaluate-<site>-r<r>`, `report`. Every site task gets its site id, policy
digest and data snapshot as explicit inputs (KFP caching keys on inputs, not on node
selectors or secrets). Caching is off for tasks with side effects: initialize (reads the
mutable latest model on resume), train (privacy ledger), export (create-only upload),
aggregate (create-only publish), validate (its privacy pre-flight reads the ledger). evaluate
and report may be cached: their keys include site id, policy digest, data snapshot and the
KFP job id. Every round-1 train waits for every site's validate, so a run that would exceed
any site's lifetime budget stops before anyone trains.
"""

import copy
import dataclasses
from typing import Any

from kfp import dsl
from kfp.dsl import PipelineTask

from components.aggregate import component as aggregate_component
from components.evaluate.component import evaluate
from components.export.component import export
from components.initialize.component import initialize
from components.report import component as report_component
from components.train.component import train
from components.validate.component import validate
from pipelines.config.canonical import canonical_dumps, canonical_json, policy_digest
from pipelines.config.loader import Federation
from pipelines.config.models import Site
from pipelines.kfp_speed import memoized_task_names
from pipelines.placement import place_coordinator_task, place_site_task

PIPELINE_NAME = "federated-training"
VALIDATE_ROUND = 1  # validate runs once per run, before round 1


def named(component: Any, name: str) -> Any:
    """A copy of `component` whose spec is called `name` (KFP derives the task name from it)."""
    clone = copy.copy(component)
    clone.component_spec = dataclasses.replace(component.component_spec, name=name)
    return clone


def site_task_name(stage: str, site_id: str, round_index: int | None = None) -> str:
    """`train-hospital-berlin-r2`; without a round: `validate-hospital-berlin`."""
    return f"{stage}-{site_id}" if round_index is None else f"{stage}-{site_id}-r{round_index}"


def federation_dataset(federation: Federation) -> str:
    """The one data contract every site trains on (the loader guarantees they agree)."""
    datasets = sorted({s.data.dataset for s in federation.sites.values() if s.data is not None})
    if len(datasets) != 1:
        raise ValueError(f"federation: expected one dataset across sites, found {datasets}")
    return datasets[0]


def quorum(federation: Federation) -> int:
    """Fewest sites per aggregate: the strictest `aggregation.min_sites` of any governing policy."""
    return max(p.aggregation.min_sites for p in federation.governing.values())


def build_pipeline(federation: Federation, rounds: int = 1, description: str = "") -> Any:
    """The `@dsl.pipeline` for `federation` with `rounds` unrolled rounds (rounds >= 1)."""
    if rounds < 1:
        raise ValueError(f"--rounds must be at least 1, got {rounds}")
    site_ids = list(federation.sites)
    sites = [federation.sites[s] for s in site_ids]
    coordinator = federation.coordinator
    dataset = federation_dataset(federation)
    min_sites = quorum(federation)
    coordinator_json = canonical_json(coordinator)
    sites_json = canonical_dumps({sid: federation.sites[sid].dict() for sid in site_ids})
    policies_json = canonical_dumps({sid: federation.policy_of(sid).dict() for sid in site_ids})
    common_static = {sid: _site_inputs(federation, federation.sites[sid]) for sid in site_ids}
    aggregate = aggregate_component.build(site_ids)
    report = report_component.build(site_ids, rounds)

    def federated_training(
        run_id: str = "",
        model_name: str = "logreg",
        local_epochs: int = 5,
        batch_size: int = 8,
        learning_rate: float = 0.05,
        noise_multiplier: float = 1.5,
        l2_norm_clip: float = 1.0,
        dp_enabled: bool = True,
        seed: int = 0,
        rule: str = "fedavg",
        rule_params_json: str = "{}",
        server_optimizer: str = "fedavg",
        server_learning_rate: float = 1.0,
        optimizer_params_json: str = "{}",
        resume: bool = False,
    ):
        """Residency-checked federated training, rounds unrolled for the compiled sites.

        Args:
            run_id: Names this run's objects in the buckets and ledgers; empty = the KFP job id.
            model_name: Model architecture trained by every site (e.g. logreg).
            local_epochs: Passes over the site's data per round.
            batch_size: Examples per DP-SGD step.
            learning_rate: Local SGD learning rate.
            noise_multiplier: DP-SGD Gaussian noise stddev, in units of l2_norm_clip.
            l2_norm_clip: Per-example gradient L2 clipping norm.
            dp_enabled: Train with DP-SGD; false only where every policy allows dp off.
            seed: Seed of model init, data order and DP noise.
            rule: fedavg, median, trimmed_mean, krum, multi_krum or norm_bounded_mean.
            rule_params_json: JSON object of the rule's parameters (e.g. {"beta": 0.1}).
            server_optimizer: Server optimizer: fedavg, fedavgm, fedadam or fedyogi.
            server_learning_rate: Server optimizer learning rate (1.0 = plain FedAvg step).
            optimizer_params_json: JSON object of server optimizer parameters ({"beta_1": 0.9}).
            resume: Start from the latest global model in the coordinator's bucket.
        """
        job_id = dsl.PIPELINE_JOB_ID_PLACEHOLDER
        run = {"run_id": run_id, "kfp_job_id": job_id}

        def site_inputs(site_id: str, round_index: int) -> dict[str, Any]:
            return {**common_static[site_id], **run, "round_index": round_index}

        init = named(initialize, "initialize")(
            coordinator_json=coordinator_json,
            model_name=model_name,
            dataset=dataset,
            seed=seed,
            resume=resume,
            **run,
        )
        _no_cache(place_coordinator_task(init, coordinator))

        validations: dict[str, PipelineTask] = {}
        for site in sites:
            task = named(validate, site_task_name("validate", site.id))(
                dataset=dataset,
                rounds=rounds,
                batch_size=batch_size,
                local_epochs=local_epochs,
                noise_multiplier=noise_multiplier,
                dp_enabled=dp_enabled,
                **site_inputs(site.id, VALIDATE_ROUND),
            )
            # it reads the privacy ledger (pre-flight lifetime budget): never from cache
            validations[site.id] = _no_cache(place_site_task(task, site))

        model = init.outputs["global_model"]
        round_reports: dict[str, Any] = {}
        evaluations: dict[str, Any] = {}
        for r in range(1, rounds + 1):
            updates: dict[str, Any] = {}
            for i, site in enumerate(sites, start=1):
                trained = named(train, site_task_name("train", site.id, r))(
                    dataset=dataset,
                    model_name=model_name,
                    local_epochs=local_epochs,
                    batch_size=batch_size,
                    learning_rate=learning_rate,
                    noise_multiplier=noise_multiplier,
                    l2_norm_clip=l2_norm_clip,
                    dp_enabled=dp_enabled,
                    seed=seed,
                    validation=validations[site.id].outputs["summary"],
                    global_model=model,
                    **site_inputs(site.id, r),
                )
                _no_cache(place_site_task(trained, site))
                if r == 1:  # nobody trains before every site passed its budget pre-flight
                    trained.after(*validations.values())
                exported = named(export, site_task_name("export", site.id, r))(
                    local_model=trained.outputs["local_model"],
                    global_model=model,
                    **site_inputs(site.id, r),
                )
                _no_cache(place_site_task(exported, site, signing=True))
                updates[aggregate_component.update_input(i)] = exported.outputs["update"]

            aggregated = named(aggregate, f"aggregate-r{r}")(
                coordinator_json=coordinator_json,
                sites_json=sites_json,
                policies_json=policies_json,
                round_index=r,
                rule=rule,
                rule_params_json=rule_params_json,
                server_optimizer=server_optimizer,
                server_learning_rate=server_learning_rate,
                optimizer_params_json=optimizer_params_json,
                min_sites=min_sites,
                previous_model=model,
                **updates,
                **run,
            )
            _no_cache(place_coordinator_task(aggregated, coordinator, read_from=sites))
            model = aggregated.outputs["global_model"]
            round_reports[report_component.round_report_input(r)] = aggregated.outputs[
                "round_report"
            ]

            for i, site in enumerate(sites, start=1):
                evaluated = named(evaluate, site_task_name("evaluate", site.id, r))(
                    dataset=dataset,
                    model_name=model_name,
                    global_model=model,
                    **site_inputs(site.id, r),
                )
                place_site_task(evaluated, site)
                evaluations[report_component.evaluation_input(r, i)] = evaluated.outputs[
                    "evaluation"
                ]

        reported = named(report, "report")(
            sites_json=sites_json,
            model_name=model_name,
            dp_enabled=dp_enabled,
            **{
                report_component.validation_input(i): validations[s.id].outputs["summary"]
                for i, s in enumerate(sites, start=1)
            },
            **round_reports,
            **evaluations,
            **run,
        )
        place_coordinator_task(reported, coordinator)

    with memoized_task_names():
        return dsl.pipeline(name=PIPELINE_NAME, description=description or None)(federated_training)


def _site_inputs(federation: Federation, site: Site) -> dict[str, str]:
    """The per-site constants every site task carries (components/CONTRACT.md)."""
    if site.data is None:
        raise ValueError(f"site {site.id}: a member site needs `data` (snapshot)")
    policy = federation.policy_of(site.id)
    return {
        "site_id": site.id,
        "policy_digest": policy_digest(policy),
        "data_snapshot": site.data.snapshot,
        "site_json": canonical_json(site),
        "policy_json": canonical_json(policy),
    }


def _no_cache(task: PipelineTask) -> PipelineTask:
    task.set_caching_options(False)
    return task
