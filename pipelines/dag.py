"""The federated-training DAG, unrolled at compile time from a `Federation`.

validate (each site, once per run) → [federated_zscore contracts: stats (each site) → scaling
(coordinator)] → initialize (coordinator, fan-in over every validation
summary: the quorum must be able to hold) → per round r: train → export (each site), aggregate (coordinator, fan-in), evaluate (each site, the
new global model) → report (coordinator, fan-in over all rounds).

Task names: `initialize`, `validate-<site>`, `train-<site>-r<r>`, `export-<site>-r<r>`,
`aggregate-r<r>`, `evaluate-<site>-r<r>`, `report`. Every site task gets its site id, policy
digest and data snapshot as explicit inputs (KFP caching keys on inputs, not on node
selectors or secrets). validate takes the site spec, its policy and the run's settings and
emits an `admission` (components/common/admission.py) that the site's train, export and
evaluate tasks take instead (same placement: it never leaves the site). Caching is off for
tasks with side effects: initialize (reads the mutable latest model on resume, appends to the
coordinator's audit chain), train (privacy ledger), export (create-only upload), aggregate
(create-only publish), validate (its privacy pre-flight reads the ledger), evaluate and report
(append to an audit chain). initialize waits for every validate
and every train needs initialize's model, so a site that cannot afford the run abstains
before anyone trains, and a run whose quorum cannot hold stops there (O(sites) edges, not
sites²).

Secure aggregation (`aggregation.protection: secagg`, SecAgg+; `_secagg_setup`): the
protocol's per-round order is advertise (site) → roster (coordinator) → share (site) → relay
(coordinator) → mask (site) → request (coordinator) → answer (site) → unmask (coordinator).
Only masking, the request, the answers and the unmasking depend on the round's model; the
first four steps depend on nothing but the run, so they run once for every round of the run
(each round still has its own fresh keys, roster, graph and shares), beside initialize:

    validate-<s> (data passed: advertises keys for rounds 1..R) → roster → shares-<s>
    (rounds 1..R) → relay
    per round r:  train-<s>-r ─┐
                  relay ───────┴→ export-<s>-r (masks) → request-r → answer-<s>-r
                  → aggregate-r (unmasks) → evaluate-<s>-r

Folded where the data flow allows: the advertisement is validate's (it already holds the
site's key and bucket, and a site whose data failed must not advertise), masking is
export's, unmasking aggregate's. A coordinator step between two site steps needs a task of
its own (KFP has no other barrier), so what remains is once per run n + 2 (shares, roster,
relay) and per round 1 + n (request, answers) on top of the plain round's 3n + 1. Shares
could fold into round 1's train, saving n tasks once per run, at the price of a barrier
between every site's round-1 training and the relay and of protocol code in the busiest
executor; answers cannot move into evaluate (evaluate needs the model the answers unmask).
The coordinator's tasks hand what they published to the sites as their artifact (a mirror of
`secagg/<run>/` of its bucket), so a site task needs no key to the coordinator's bucket;
every such artifact is class `secagg_public` and the masked export `masked_update`, both
checked like every other crossing.
"""

import copy
import dataclasses
import inspect
import re
from collections.abc import Callable
from typing import Any

from kfp import dsl
from kfp.dsl import PipelineTask

from components.aggregation import component as aggregate_component
from components.common.config_digest import config_digest
from components.domain.canonical import canonical_dumps, canonical_json, policy_digest, sha256_hex
from components.domain.federation import Federation
from components.domain.models import Site
from components.domain.protection import PROTECTION_HE, PROTECTION_SECAGG, federation_protection
from components.evaluate.component import evaluate
from components.export.component import export, export_encrypted, export_masked
from components.initialize import component as initialize_component
from components.report import component as report_component
from components.scaling import component as scaling_component
from components.secagg_stages import component as secagg_component
from components.stats.component import stats as stats_component
from components.train.component import train
from components.validate.component import validate
from pipelines.kfp_speed import memoized_task_names
from pipelines.placement import place_coordinator_task, place_site_task
from pipelines.placement.credentials import use_own_policy, use_pod_identity
from pipelines.placement.registry import site_image
from pipelines.residency.protection import secagg_settings
from pipelines.task_names import task_name

PIPELINE_NAME = "federated-training"
VALIDATE_ROUND = 1  # validate runs once per run, before round 1


def named(component: Any, name: str) -> Any:
    """A copy of `component` whose spec is called `name` (KFP derives the task name from it)."""
    clone = copy.copy(component)
    clone.component_spec = dataclasses.replace(component.component_spec, name=name)
    return clone


def federation_dataset(federation: Federation) -> str:
    """The name of the one data contract every site trains on (the loader guarantees they
    agree)."""
    return federation.contract_name


# The run's knobs, shown in the Kubeflow UI's run form: (name, type, default, description).
USER_PARAMS: tuple[tuple[str, type, Any, str], ...] = (
    (
        "run_id",
        str,
        "",
        "Names this run's objects in the buckets and ledgers; empty = the KFP job id.",
    ),
    ("model_name", str, "logreg", "Model architecture trained by every site (e.g. logreg)."),
    ("local_epochs", int, 5, "Passes over the site's data per round."),
    ("batch_size", int, 8, "Examples per DP-SGD step."),
    ("learning_rate", float, 0.05, "Local SGD learning rate."),
    ("noise_multiplier", float, 1.5, "DP-SGD Gaussian noise stddev, in units of l2_norm_clip."),
    ("l2_norm_clip", float, 1.0, "Per-example gradient L2 clipping norm."),
    ("dp_enabled", bool, True, "Train with DP-SGD; false only where every policy allows dp off."),
    (
        "dp_sampling",
        str,
        "poisson",
        "DP-SGD batches: poisson (epsilon proven) or shuffle (ledger marks it not proven).",
    ),
    ("seed", int, 0, "Seed of model init, data order and DP noise."),
    (
        "rule",
        str,
        "fedavg",
        "fedavg, median, trimmed_mean, krum, multi_krum, norm_bounded_mean, geometric_median, "
        "centred_clipping or screened_geometric_median (the recommended robust rule).",
    ),
    ("rule_params_json", str, "{}", 'JSON object of the rule\'s parameters (e.g. {"beta": 0.1}).'),
    ("server_optimizer", str, "fedavg", "Server optimizer: fedavg, fedavgm, fedadam or fedyogi."),
    (
        "server_learning_rate",
        float,
        1.0,
        "Server optimizer learning rate (1.0 = plain FedAvg step).",
    ),
    (
        "optimizer_params_json",
        str,
        "{}",
        'JSON object of server optimizer parameters ({"beta_1": 0.9}).',
    ),
    ("resume", bool, False, "Start from the latest global model in the coordinator's bucket."),
)

# Compiled configuration shared by many tasks: pipeline inputs with the specs as defaults, so
# each is written once and tasks reference it. A site task refuses a policy whose digest is
# not its compiled `policy_digest` constant; initialize and aggregate refuse config_* texts
# whose digest is not their `config_digest` constant (components/common/config_digest.py).
CONFIG_PREFIX = "config_"
CONFIG_COORDINATOR = "config_coordinator"
CONFIG_SITES = "config_sites"
CONFIG_POLICIES = "config_policies"
CONFIG_CONTRACT = "config_contract"
CONFIG_NOTE = "Compiled from sites/ and policies/; do not edit (tasks check its digest)."


def _param_suffix(ident: str) -> str:
    return re.sub(r"[^a-z0-9]", "_", ident.lower())


def policy_param(policy_id: str) -> str:
    """Pipeline input holding policy `policy_id` as JSON (`config_policy_eu_health`)."""
    return f"{CONFIG_PREFIX}policy_{_param_suffix(policy_id)}"


def compiled_config(federation: Federation) -> dict[str, tuple[str, str]]:
    """{pipeline input name: (JSON default, description)} for the compiled configuration.

    One input per policy of a member site (what validate reads), the coordinator, all sites
    ({site_id: Site}) and their policies ({policy_id: Policy}) for the fan-in tasks, and the
    members' data contract (validate and initialize; KeyError when it was not loaded).
    ValueError when two policy ids map to the same input name. (A site's own spec is a
    constant of its validate task, which hands it on in its admission.)
    """
    site_ids = list(federation.sites)
    policies = {p.id: p for p in (federation.policy_of(sid) for sid in site_ids)}
    config: dict[str, tuple[str, str]] = {
        CONFIG_COORDINATOR: (
            canonical_json(federation.coordinator),
            f"Coordinator spec. {CONFIG_NOTE}",
        ),
        CONFIG_SITES: (
            canonical_dumps({sid: federation.sites[sid].dict() for sid in site_ids}),
            f"All site specs, {{site_id: Site}}. {CONFIG_NOTE}",
        ),
        CONFIG_POLICIES: (
            canonical_dumps({pid: p.dict() for pid, p in sorted(policies.items())}),
            f"The sites' policies, {{policy_id: Policy}}. {CONFIG_NOTE}",
        ),
        CONFIG_CONTRACT: (
            canonical_json(federation.contract),
            f"The sites' data contract (sites/contracts/). {CONFIG_NOTE}",
        ),
    }
    owners: dict[str, str] = {}

    def add(name: str, owner: str, value: str, what: str) -> None:
        if name in owners:
            raise ValueError(
                f"{owner} and {owners[name]} both map to pipeline input {name}; rename one"
            )
        owners[name] = owner
        config[name] = (value, f"{what} {CONFIG_NOTE}")

    for pid, policy in sorted(policies.items()):
        add(policy_param(pid), f"policy {pid}", canonical_json(policy), f"Policy {pid}.")
    return config


def user_defaults(federation: Federation) -> dict[str, Any]:
    """USER_PARAMS defaults for `federation`: `rule` from the coordinator policy's
    `aggregation.rule` when it sets one."""
    defaults = {name: default for name, _, default, _ in USER_PARAMS}
    own = federation.policy_of(federation.coordinator.id).aggregation.rule
    if own is not None:
        defaults["rule"] = own
    return defaults


def pipeline_entry(
    body: Callable[..., None],
    config: dict[str, tuple[str, str]],
    defaults: dict[str, Any] | None = None,
) -> Callable[..., None]:
    """The pipeline function KFP sees: USER_PARAMS then the config inputs (with defaults and
    descriptions), forwarding to `body(**user_params, cfg={config input: channel})`.
    `defaults` overrides USER_PARAMS defaults by name (`user_defaults`)."""
    names = [n for n, *_ in USER_PARAMS]
    given = defaults or {}
    params = [
        inspect.Parameter(
            n, inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=t, default=given.get(n, d)
        )
        for n, t, d, _ in USER_PARAMS
    ]
    params += [
        inspect.Parameter(n, inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=str, default=v)
        for n, (v, _) in config.items()
    ]
    docs = [f"    {n}: {d}" for n, *_, d in USER_PARAMS]
    docs += [f"    {n}: {d}" for n, (_, d) in config.items()]

    def federated_training(*channels: Any) -> None:
        values = dict(zip([p.name for p in params], channels, strict=True))
        body(**{n: values[n] for n in names}, cfg={n: values[n] for n in config})

    federated_training.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    federated_training.__doc__ = (
        "Residency-checked federated training, rounds unrolled for the compiled sites.\n\n"
        "Args:\n" + "\n".join(docs) + "\n"
    )
    return federated_training


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
    config = compiled_config(federation)
    contract_digest = sha256_hex(config[CONFIG_CONTRACT][0])
    fanin_digest = config_digest(
        coordinator_json=config[CONFIG_COORDINATOR][0],
        sites_json=config[CONFIG_SITES][0],
        policies_json=config[CONFIG_POLICIES][0],
    )
    common_static = {sid: _site_inputs(federation, federation.sites[sid]) for sid in site_ids}
    initialize = initialize_component.build(site_ids)
    report = report_component.build(site_ids, rounds)
    # aggregation.protection he: export publishes a ciphertext (class masked_update), the
    # coordinator adds ciphertexts, train/export/evaluate decrypt the global model at the site
    protection = federation_protection(
        {p.id: p.aggregation.protection for p in federation.governing.values()}
    )
    exporter = export_encrypted if protection == PROTECTION_HE else export
    # aggregation.protection secagg: the SecAgg+ stages (module doc)
    secagg = protection == PROTECTION_SECAGG
    secagg_json = secagg_settings(federation).to_json() if secagg else ""
    aggregate = aggregate_component.build(site_ids, secagg=secagg)
    request_component = secagg_component.build("request", site_ids) if secagg else None

    def federated_training(
        run_id: str,
        model_name: str,
        local_epochs: int,
        batch_size: int,
        learning_rate: float,
        noise_multiplier: float,
        l2_norm_clip: float,
        dp_enabled: bool,
        dp_sampling: str,
        seed: int,
        rule: str,
        rule_params_json: str,
        server_optimizer: str,
        server_learning_rate: float,
        optimizer_params_json: str,
        resume: bool,
        cfg: dict[str, Any],
    ):
        job_id = dsl.PIPELINE_JOB_ID_PLACEHOLDER
        run = {"run_id": run_id, "kfp_job_id": job_id}

        def site_inputs(site_id: str, round_index: int) -> dict[str, Any]:
            """Cache keys and round; the rest comes with validate's admission."""
            admission = validations[site_id].outputs["admission"]
            return {**common_static[site_id], "round_index": round_index, "admission": admission}

        validations: dict[str, PipelineTask] = {}
        for site in sites:
            task = named(validate, task_name("validate", site.id))(
                **common_static[site.id],
                site_json=canonical_json(site),
                policy_json=cfg[policy_param(site.policy)],
                round_index=VALIDATE_ROUND,
                contract_json=cfg[CONFIG_CONTRACT],
                contract_digest=contract_digest,
                dataset=dataset,
                rounds=rounds,
                model_name=model_name,
                local_epochs=local_epochs,
                batch_size=batch_size,
                learning_rate=learning_rate,
                noise_multiplier=noise_multiplier,
                l2_norm_clip=l2_norm_clip,
                dp_enabled=dp_enabled,
                dp_sampling=dp_sampling,
                seed=seed,
                image=site_image(site),
                rule=rule,
                coordinator_json=cfg[CONFIG_COORDINATOR],
                **run,
            )
            # it reads the privacy ledger (pre-flight lifetime budget) and the site's own
            # policy, and signs its admission: never from cache; it reads from its own pod
            # which image it runs in (the site's image allowlist)
            place_site_task(task, site, signing=True)
            use_pod_identity(task)
            validations[site.id] = _no_cache(use_own_policy(task, site))

        scaled = None
        if federation.contract.encoding.scaling == "federated_zscore":
            scaled = _statistics_round(
                federation, sites, validations, site_inputs, cfg, config, run
            )

        # nobody trains before every site's validate (DP-off decision, budget pre-flight)
        # finished and initialize found that the quorum can hold: every train needs
        # initialize's model, and initialize takes every validation summary (O(sites) edges)
        init = named(initialize, task_name("initialize"))(
            coordinator_json=cfg[CONFIG_COORDINATOR],
            contract_json=cfg[CONFIG_CONTRACT],
            config_digest=config_digest(
                coordinator_json=config[CONFIG_COORDINATOR][0],
                contract_json=config[CONFIG_CONTRACT][0],
            ),
            model_name=model_name,
            dataset=dataset,
            seed=seed,
            resume=resume,
            min_sites=min_sites,
            **{
                initialize_component.validation_input(i): validations[s.id].outputs["summary"]
                for i, s in enumerate(sites, start=1)
            },
            **run,
        )
        # it signs the run's quorum decision and starting model into the coordinator's chain
        _no_cache(place_coordinator_task(init, coordinator, signing=True))
        if scaled is not None:  # initialize puts the published mean/std into v0's meta
            init.after(scaled)
        model = init.outputs["global_model"]
        relay = None
        if secagg:
            relay = _secagg_setup(
                federation,
                sites,
                validations,
                site_inputs,
                cfg,
                fanin_digest,
                secagg_json,
                rounds,
                run,
            )
        round_reports: dict[str, Any] = {}
        evaluations: dict[str, Any] = {}
        for r in range(1, rounds + 1):
            updates: dict[str, Any] = {}
            for i, site in enumerate(sites, start=1):
                trained = named(train, task_name("train", site.id, r))(
                    validation=validations[site.id].outputs["summary"],
                    global_model=model,
                    **site_inputs(site.id, r),
                )
                _no_cache(place_site_task(trained, site, signing=True))
                if relay is None:
                    exported = named(exporter, task_name("export", site.id, r))(
                        local_model=trained.outputs["local_model"],
                        global_model=model,
                        **site_inputs(site.id, r),
                    )
                else:  # secagg: the masked, quantized update (after the shares are relayed)
                    exported = named(export_masked, task_name("export", site.id, r))(
                        local_model=trained.outputs["local_model"],
                        global_model=model,
                        relay=relay.outputs["relay"],
                        secagg_json=secagg_json,
                        coordinator_json=cfg[CONFIG_COORDINATOR],
                        sites_json=cfg[CONFIG_SITES],
                        **site_inputs(site.id, r),
                    )
                _no_cache(place_site_task(exported, site, signing=True))
                updates[aggregate_component.update_input(i)] = exported.outputs["update"]
            unmasking: dict[str, Any] = {}
            if request_component is not None:
                unmasking = _secagg_unmasking(
                    request_component,
                    federation,
                    sites,
                    updates,
                    model,
                    site_inputs,
                    cfg,
                    fanin_digest,
                    secagg_json,
                    min_sites,
                    r,
                    run,
                )

            aggregated = named(aggregate, task_name("aggregate", round_index=r))(
                coordinator_json=cfg[CONFIG_COORDINATOR],
                sites_json=cfg[CONFIG_SITES],
                policies_json=cfg[CONFIG_POLICIES],
                config_digest=fanin_digest,
                round_index=r,
                rule=rule,
                rule_params_json=rule_params_json,
                server_optimizer=server_optimizer,
                server_learning_rate=server_learning_rate,
                optimizer_params_json=optimizer_params_json,
                min_sites=min_sites,
                previous_model=model,
                **updates,
                **unmasking,
                **run,
            )
            _no_cache(
                place_coordinator_task(aggregated, coordinator, read_from=sites, signing=True)
            )
            model = aggregated.outputs["global_model"]
            round_reports[report_component.round_report_input(r)] = aggregated.outputs[
                "round_report"
            ]

            for i, site in enumerate(sites, start=1):
                evaluated = named(evaluate, task_name("evaluate", site.id, r))(
                    global_model=model,
                    **site_inputs(site.id, r),
                )
                _no_cache(place_site_task(evaluated, site, signing=True))
                evaluations[report_component.evaluation_input(r, i)] = evaluated.outputs[
                    "evaluation"
                ]

        reported = named(report, task_name("report"))(
            sites_json=cfg[CONFIG_SITES],
            coordinator_json=cfg[CONFIG_COORDINATOR],
            config_digest=config_digest(coordinator_json=config[CONFIG_COORDINATOR][0]),
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
        # it appends the report's digests to the coordinator's audit chain: never from cache
        _no_cache(place_coordinator_task(reported, coordinator, signing=True))

    entry = pipeline_entry(federated_training, config, user_defaults(federation))
    with memoized_task_names():
        return dsl.pipeline(name=PIPELINE_NAME, description=description or None)(entry)


def _statistics_round(
    federation: Federation,
    sites: list[Site],
    validations: dict[str, PipelineTask],
    site_inputs: Callable[[str, int], dict[str, Any]],
    cfg: dict[str, Any],
    config: dict[str, tuple[str, str]],
    run: dict[str, Any],
) -> PipelineTask:
    """federated_zscore: `stats-<site>` (each site releases its DP-noised statistics, charged
    to its ledger) → `scaling` (the coordinator combines and publishes the global mean/std)."""
    site_ids = [s.id for s in sites]
    released: dict[str, Any] = {}
    for i, site in enumerate(sites, start=1):
        task = named(stats_component, task_name("stats", site.id))(
            validation=validations[site.id].outputs["summary"],
            **site_inputs(site.id, VALIDATE_ROUND),
        )
        # it charges the privacy ledger and writes create-only: never from cache
        _no_cache(place_site_task(task, site, signing=True))
        released[scaling_component.stats_input(i)] = task.outputs["stats"]
    combine = named(scaling_component.build(site_ids), task_name("scaling"))(
        coordinator_json=cfg[CONFIG_COORDINATOR],
        sites_json=cfg[CONFIG_SITES],
        contract_json=cfg[CONFIG_CONTRACT],
        config_digest=config_digest(
            coordinator_json=config[CONFIG_COORDINATOR][0],
            sites_json=config[CONFIG_SITES][0],
            contract_json=config[CONFIG_CONTRACT][0],
        ),
        min_sites=quorum(federation),
        **released,
        **run,
    )
    return _no_cache(place_coordinator_task(combine, federation.coordinator, read_from=sites))


def _secagg_setup(
    federation: Federation,
    sites: list[Site],
    validations: dict[str, PipelineTask],
    site_inputs: Callable[[str, int], dict[str, Any]],
    cfg: dict[str, Any],
    fanin_digest: str,
    secagg_json: str,
    rounds: int,
    run: dict[str, Any],
) -> PipelineTask:
    """SecAgg+ once per run, for every round: (validate advertised) → roster → shares-<site>
    → relay (the module doc). Returns the relay task, whose artifact every masked export
    reads."""
    site_ids = [s.id for s in sites]
    coordinator = federation.coordinator
    shared = {"coordinator_json": cfg[CONFIG_COORDINATOR], "sites_json": cfg[CONFIG_SITES]}
    fanin = {
        **shared,
        "policies_json": cfg[CONFIG_POLICIES],
        "config_digest": fanin_digest,
        "secagg_json": secagg_json,
        **run,
    }
    roster = named(secagg_component.build("roster", site_ids), task_name("roster"))(
        rounds=rounds,
        **{
            secagg_component.site_input("roster", i): validations[s.id].outputs["summary"]
            for i, s in enumerate(sites, start=1)
        },
        **fanin,
    )
    _no_cache(place_coordinator_task(roster, coordinator, read_from=sites, signing=True))
    sealed: dict[str, Any] = {}
    for i, site in enumerate(sites, start=1):
        task = named(secagg_component.shares, task_name("shares", site.id))(
            validation=validations[site.id].outputs["summary"],
            roster=roster.outputs["roster"],
            **shared,
            **site_inputs(site.id, VALIDATE_ROUND),
        )
        _no_cache(place_site_task(task, site, signing=True))
        sealed[secagg_component.site_input("relay", i)] = task.outputs["shares"]
    relay = named(secagg_component.build("relay", site_ids), task_name("relay"))(
        rounds=rounds, **sealed, **fanin
    )
    # signing: an exclusion of a site that shared nothing is signed (`run_relay`)
    return _no_cache(place_coordinator_task(relay, coordinator, read_from=sites, signing=True))


def _secagg_unmasking(
    request_component: Any,
    federation: Federation,
    sites: list[Site],
    updates: dict[str, Any],
    model: Any,
    site_inputs: Callable[[str, int], dict[str, Any]],
    cfg: dict[str, Any],
    fanin_digest: str,
    secagg_json: str,
    min_sites: int,
    round_index: int,
    run: dict[str, Any],
) -> dict[str, Any]:
    """SecAgg+ round r after masking: request-r → answer-<site>-r; returns aggregate's extra
    inputs (the answers, the request, the settings)."""
    coordinator = federation.coordinator
    request = named(request_component, task_name("request", round_index=round_index))(
        coordinator_json=cfg[CONFIG_COORDINATOR],
        sites_json=cfg[CONFIG_SITES],
        policies_json=cfg[CONFIG_POLICIES],
        config_digest=fanin_digest,
        secagg_json=secagg_json,
        round_index=round_index,
        min_sites=min_sites,
        previous_model=model,
        **{
            secagg_component.site_input("request", i): updates[aggregate_component.update_input(i)]
            for i in range(1, len(sites) + 1)
        },
        **run,
    )
    _no_cache(place_coordinator_task(request, coordinator, read_from=sites, signing=True))
    out: dict[str, Any] = {"secagg_json": secagg_json, "request": request.outputs["request"]}
    for i, site in enumerate(sites, start=1):
        task = named(secagg_component.answer, task_name("answer", site.id, round_index))(
            update=updates[aggregate_component.update_input(i)],
            request=request.outputs["request"],
            coordinator_json=cfg[CONFIG_COORDINATOR],
            sites_json=cfg[CONFIG_SITES],
            **site_inputs(site.id, round_index),
        )
        _no_cache(place_site_task(task, site, signing=True))
        out[aggregate_component.answer_input(i)] = task.outputs["answer"]
    return out


def _site_inputs(federation: Federation, site: Site) -> dict[str, str]:
    """The per-site constants every site task carries (components/CONTRACT.md)."""
    if site.data is None:
        raise ValueError(f"site {site.id}: a member site needs `data` (snapshot)")
    policy = federation.policy_of(site.id)
    return {
        "site_id": site.id,
        "policy_digest": policy_digest(policy),
        "data_snapshot": site.data.snapshot,
    }


def _no_cache(task: PipelineTask) -> PipelineTask:
    task.set_caching_options(False)
    return task
