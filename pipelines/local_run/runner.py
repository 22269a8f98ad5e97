"""`fedpipe run --local`: the whole federation on this machine, through kfp.local.

Steps: load sites/policies; start one S3-compatible server per site and a GCS emulator for
the coordinator (state restored from `<runs>/.state`); per-site credentials and Ed25519
signing keys under `<run>/secrets` (0600); local copies of the site files (local public
key, dataset; endpoints via FEDPIPE_ENDPOINT_OVERRIDES); data prepared from scikit-learn's
bundled set and uploaded to each site's bucket; the federation compiled (residency-checked)
into `<run>/compiled`; the pipeline executed with kfp.local in a child process (`child`)
whose output becomes one progress line per task (`reporter`); then the host re-accounts the
ledgers, scores and writes the outputs (`host`). Servers are stopped and bucket state saved
on every exit path (Ctrl-C included). Options, result and errors: `options`; the runs-folder
lock and signal handling: `guards`.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml

from components.common.object_store import StoreAccessError
from components.common.secrets import MissingSecretError
from components.domain.canonical import canonical_json
from components.domain.models import Site
from components.domain.protection import PROTECTION_HE
from components.validate.site_admission import OWN_POLICY_KEY
from pipelines.access.rules import access_rules
from pipelines.config.loader import CONTRACTS_DIR, ConfigError, Federation, load_federation
from pipelines.local_run import collect as collect_mod
from pipelines.local_run import host
from pipelines.local_run.child import (
    child_env,
    execute_pipeline,
    start_warm_worker,
    stop_warm_worker,
)
from pipelines.local_run.dpfit import distributed_plan_line
from pipelines.local_run.guards import exclusive_lock, sigterm_as_interrupt, update_latest
from pipelines.local_run.options import (
    RunError,
    RunOptions,
    RunResult,
    argument_problems,
    check_contract,
    check_dp_off_allowed,
    check_run_id,
    default_run_id,
    effective_dp,
    parameter_types,
    pipeline_arguments,
    pipeline_parameters,
    run_parameter_rules,
)
from pipelines.local_run.progress import task_map
from pipelines.local_run.reporter import LedgerView, Progress, failure_message
from pipelines.local_run.siteconf import write_local_config
from pipelines.local_run.stage_times import format_stage_times, stage_times
from pipelines.local_run.stores import (
    COORDINATOR_READ,
    LocalStores,
    configured_endpoints,
    ensure_signing_keys,
)
from pipelines.local_run.task_env import secret_files, thread_environment, write_secret_files
from pipelines.localstack.servers import ServerStartError
from pipelines.placement.credentials import coordinator_read_secret_name

__all__ = ["RunError", "RunOptions", "RunResult", "compile_federation", "run_local"]

STATE_DIR = ".state"
STORES_DIR = "seaweedfs"  # under STATE_DIR: each site's S3 server data folder


def compile_federation(
    sites_dir: Path, policies_dir: Path, out_dir: Path, rounds: int
) -> tuple[Path, dict[str, Any], dict[str, Any]]:
    """Compile the run's federation (residency-checked) into `out_dir`.

    Returns the pipeline YAML's path, its pipeline spec and its platform spec (the YAML's
    two documents)."""
    from pipelines.compiler import PIPELINE_FILE, write_outputs
    from pipelines.compiler import compile_federation as compile_checked
    from pipelines.config.loader import ConfigError
    from pipelines.residency import ResidencyViolationError

    try:
        compiled = compile_checked(load_federation(sites_dir, policies_dir), rounds)
    except (ConfigError, ResidencyViolationError) as exc:
        raise RunError(f"compile failed: {exc}") from None
    write_outputs(compiled.files(), out_dir)
    documents = [d for d in yaml.safe_load_all(compiled.pipeline_yaml) if d]
    platform = documents[1] if len(documents) > 1 else {}
    return out_dir / PIPELINE_FILE, documents[0], platform


def preflight(options: RunOptions, federation: Federation) -> RunOptions:
    """What can be refused before anything starts (no server, no folder, no task): the run
    parameters against the compiled pipeline's inputs and their value rules, then DP off
    (whether `--no-dp` or `--param dp_enabled=false` asks) against every site's policy, and the
    run's data contract (loaded; with DP on, no scaler fitted on a site's rows).
    RunError naming each bad parameter or refusing site; else `options` with `dp` the
    effective DP setting."""
    from pipelines.compiler import compile_federation as compile_checked
    from pipelines.config.loader import ConfigError
    from pipelines.residency import ResidencyViolationError

    try:
        compiled = compile_checked(federation, options.rounds)
    except (ConfigError, ResidencyViolationError) as exc:
        raise RunError(f"compile failed: {exc}") from None
    spec = next(d for d in yaml.safe_load_all(compiled.pipeline_yaml) if d)
    types = parameter_types(spec)
    arguments, _ = pipeline_arguments(dict.fromkeys(types), "", options)
    arguments.pop("run_id", None)  # checked as --run-id
    builders = [c.model.builder for c in federation.contracts.values() if c.model is not None]
    rules = run_parameter_rules(builders)
    problems = argument_problems(types, {**arguments, **options.overrides}, rules)
    if problems:
        raise RunError(
            "run parameters refused before anything started:\n  " + "\n  ".join(problems)
        )
    check_protection_parameters(federation, spec, options)
    dp = effective_dp(options)
    asked_by = "--param dp_enabled=false" if "dp_enabled" in options.overrides else "--no-dp"
    check_dp_off_allowed(federation, dp, asked_by)
    options = dataclasses.replace(options, dp=dp)
    if options.data_dir is not None:  # your own files follow the sites' own contract
        options = dataclasses.replace(options, dataset=federation.contract_name)
    check_contract(federation, options)
    return options


def check_protection_parameters(
    federation: Federation, spec: dict[str, Any], options: RunOptions
) -> None:
    """RunError when the run's rule or server optimizer (compiled default, recipe or
    `--param`) cannot run under the policies' update protection: refused before anyone
    trains, not at the first aggregate (`components.domain.protection.rule_conflicts`)."""
    from components.domain.protection import rule_conflicts

    params = pipeline_parameters(spec)
    arguments, _ = pipeline_arguments(params, "", options)
    values = {**{k: v for k, v in params.items() if v is not None}, **arguments}
    if not {"rule", "server_optimizer", "server_learning_rate"} <= set(values):
        return
    conflicts = rule_conflicts(
        protection_of(federation),
        str(values["rule"]),
        str(values["server_optimizer"]),
        float(values["server_learning_rate"]),
    )
    if conflicts:
        raise RunError(
            "run parameters refused before anything started:\n  " + "\n  ".join(conflicts)
        )


def _s3_key(site: Site, uri: str) -> str:
    prefix = f"s3://{site.object_store.bucket}/"
    if not uri.startswith(prefix):
        raise RunError(f"site {site.id}: data URI {uri} is not in its bucket {prefix}")
    return uri[len(prefix) :]


TABLE_SUFFIXES = (".csv", ".parquet", ".pq")


def user_data(federation: Federation, data_dir: Path) -> dict[str, dict[str, Path]]:
    """`DIR/<site-id>/train.<csv|parquet|pq>` and `holdout.<...>` of every member site;
    RunError naming every missing, ambiguous or unknown entry at once."""
    problems: list[str] = []
    if not data_dir.is_dir():
        raise RunError(f"--data {data_dir}: not a directory")
    unknown = sorted(
        p.name for p in data_dir.iterdir() if p.is_dir() and p.name not in federation.sites
    )
    problems += [f"{data_dir / n}: not a site of the federation" for n in unknown]
    paths: dict[str, dict[str, Path]] = {}
    for site_id in federation.sites:
        found: dict[str, Path] = {}
        for role in ("train", "holdout"):
            candidates = [data_dir / site_id / f"{role}{suffix}" for suffix in TABLE_SUFFIXES]
            present = [c for c in candidates if c.is_file()]
            if len(present) != 1:
                what = "no" if not present else "more than one"
                problems.append(
                    f"{data_dir / site_id}: {what} {role} file ({role}.csv, {role}.parquet or "
                    f"{role}.pq)"
                )
            else:
                found[role] = present[0]
        paths[site_id] = found
    if problems:
        raise RunError("--data: " + "; ".join(problems))
    return paths


def data_uris(site: Site, files: dict[str, Path]) -> tuple[str, str]:
    """The site's table URIs in its own bucket, with the suffixes of its own files."""
    bucket = site.object_store.bucket
    return (
        f"s3://{bucket}/data/train{files['train'].suffix.lower()}",
        f"s3://{bucket}/data/holdout{files['holdout'].suffix.lower()}",
    )


def files_digest(paths: dict[str, dict[str, Path]]) -> str:
    """sha256 over the sites' files (the local data snapshot id)."""
    import hashlib

    digest = hashlib.sha256()
    for site_id in sorted(paths):
        for role in sorted(paths[site_id]):
            digest.update(f"{site_id}/{role}\x00".encode())
            digest.update(paths[site_id][role].read_bytes())
    return digest.hexdigest()


def prepare_data(
    federation: Federation, options: RunOptions, data_dir: Path
) -> dict[str, dict[str, Path]]:
    """Split the dataset over the member sites (B1's preparation); CSVs under `data_dir`."""
    from components.datasets.prepare import prepare_local

    if options.data_dir is not None:
        return user_data(federation, options.data_dir)
    alpha = options.alpha if options.split == "dirichlet" else None
    try:
        return prepare_local(
            federation.contracts[options.dataset],
            list(federation.sites),
            data_dir,
            seed=options.seed,
            alpha=alpha,
        )
    except (RuntimeError, ValueError) as exc:
        raise RunError(f"data: {exc}") from None


def run_local(
    options: RunOptions,
    emit: Callable[[str], None] = print,
    status: Callable[[str], None] | None = None,
) -> RunResult:
    """Run the federation locally end to end; RunError with a clear message on failure."""
    import warnings

    from pipelines.config.loader import ConfigError

    warnings.filterwarnings("ignore", category=FutureWarning)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # host-side TF: no plugin noise
    timings: dict[str, float] = {}
    t_start = time.monotonic()
    try:
        federation = load_federation(options.sites_dir, options.policies_dir)
    except ConfigError as exc:
        raise RunError(str(exc)) from None
    if options.rounds < 1:
        raise RunError("--rounds must be >= 1")
    options = preflight(options, federation)
    if options.isolation not in ("warm", "process"):
        raise RunError(f"--isolation {options.isolation!r}: use warm or process")
    if options.workers < 1:
        raise RunError(f"--workers {options.workers}: use 1 or more")
    run_id = check_run_id(options.run_id or default_run_id())
    runs_dir = options.runs_dir.resolve()
    run_dir = runs_dir / run_id
    if (run_dir / "summary.json").is_file():
        raise RunError(
            f"run {run_id} already finished ({run_dir / 'summary.json'}); rerunning it would "
            "add nothing. Pick a new --run-id (or omit it)."
        )
    resuming = run_dir.exists()
    with exclusive_lock(runs_dir / ".lock", f"runs folder {runs_dir}"), sigterm_as_interrupt():
        run_dir.mkdir(parents=True, exist_ok=True)
        update_latest(runs_dir, run_id)
        if resuming:
            emit(
                f"resuming run {run_id}: rounds whose updates were exported are not trained "
                "again (no privacy budget is spent twice)"
            )
        stores = LocalStores()
        all_sites = federation.all_sites
        warm = None
        if options.isolation == "warm":  # its imports overlap stores, data and compile
            warm = start_warm_worker(
                {**child_env({}, run_dir), **thread_environment(options.workers)},
                run_dir / "logs" / "tasks" / "warm-worker.log",
            )
        try:
            t = time.monotonic()
            try:
                configured = configured_endpoints(
                    federation.sites, federation.coordinator, os.environ
                )
                if configured is None:
                    stores.start(
                        federation.sites,
                        federation.coordinator,
                        access_rules(federation),
                        data_root=runs_dir / STATE_DIR / STORES_DIR,
                    )
                else:
                    stores.connect(*configured)
            except (ServerStartError, ValueError, MissingSecretError) as exc:
                raise RunError(f"object stores: {exc}") from None
            timings["servers_s"] = time.monotonic() - t
            emit(
                "object stores: "
                + ", ".join(f"{s} s3://{srv.endpoint}" for s, srv in stores.s3.items())
                + (f", coordinator gcs {stores.gcs.url}" if stores.gcs else "")
            )
            with _store_access_as_run_error():
                return _run_with_stores(
                    options,
                    federation,
                    all_sites,
                    stores,
                    run_id,
                    run_dir,
                    emit,
                    timings,
                    t_start,
                    status,
                    warm,
                )
        finally:
            stop_warm_worker(warm)
            if stores.state_loaded:  # never replace the saved state with a partial one
                try:
                    saved = stores.save_state(all_sites, runs_dir / STATE_DIR)
                    emit(f"bucket state saved ({saved} objects) to {runs_dir / STATE_DIR}")
                    for site_id, why in stores.unsaved.items():
                        emit(f"WARNING: {why}; its previous mirror is kept (site {site_id})")
                except Exception as exc:
                    emit(f"WARNING: bucket state not saved ({exc}); {runs_dir / STATE_DIR} kept")
            stores.stop()


def protection_of(federation: Federation) -> str:
    """The federation's update protection (the compiler refuses conflicting policies)."""
    from components.domain.protection import federation_protection

    return federation_protection(
        {p.id: p.aggregation.protection for p in federation.governing.values()}
    )


def _install_he_context(federation: Federation, stores: LocalStores) -> str:
    """Federation setup for protection he on the local stores (`pipelines.he_setup`): the
    CKKS secret context into each site's bucket, the public one into the coordinator's."""
    import io

    from components.he.wire import COORDINATOR_CONTEXT_KEY, SITE_CONTEXT_KEY
    from pipelines.he_setup import describe, install_local

    sites, coordinator = federation.sites, federation.coordinator

    def put_site(site_id: str, data: bytes) -> None:
        bucket = sites[site_id].object_store.bucket
        stores.minio(site_id).put_object(bucket, SITE_CONTEXT_KEY, io.BytesIO(data), len(data))

    def put_coordinator(data: bytes) -> None:
        bucket = stores.gcs_client().bucket(coordinator.object_store.bucket)
        bucket.blob(COORDINATOR_CONTEXT_KEY).upload_from_string(data)

    installed = install_local(
        list(sites),
        read_site=lambda s: stores.get_bytes(sites[s], SITE_CONTEXT_KEY),
        read_coordinator=lambda: stores.get_bytes(coordinator, COORDINATOR_CONTEXT_KEY),
        put_site=put_site,
        put_coordinator=put_coordinator,
    )
    buckets = {s: site.object_store.bucket for s, site in sites.items()}
    return describe(installed, buckets, coordinator.object_store.bucket)


def _decrypted_for_host(
    federation: Federation,
    stores: LocalStores,
    artifacts: collect_mod.RunArtifacts,
    out: Path,
) -> collect_mod.RunArtifacts:
    """Protection he: the host (this process, which set the federation up and holds every
    key, standing in for the sites) decrypts each round's encrypted global model with the
    first site's context, for the pooled-test score and `global_model/`. No pipeline task
    does this on the coordinator's side."""
    from components.common.global_model import write_global_model
    from components.he.global_model import decrypt_global, read_encrypted
    from components.he.keys import open_envelope
    from components.he.wire import SITE_CONTEXT_KEY

    site = next(iter(federation.sites.values()))
    data = stores.get_bytes(site, SITE_CONTEXT_KEY)
    if data is None:
        raise RunError(f"site {site.id}: its CKKS context {SITE_CONTEXT_KEY} disappeared")
    loaded = open_envelope(data, secret=True, where=f"site {site.id}: {SITE_CONTEXT_KEY}")
    plain: dict[int, Path] = {}
    for rnd, folder in sorted(artifacts.global_models.items()):
        model = decrypt_global(read_encrypted(folder), loaded.context, loaded.context_id)
        write_global_model(out / f"round-{rnd}", model)
        plain[rnd] = out / f"round-{rnd}"
    return dataclasses.replace(artifacts, global_models=plain)


@contextmanager
def _store_access_as_run_error() -> Iterator[None]:
    """A store that refuses a site's keys ends the run with its message (site, store, fix)."""
    try:
        yield
    except StoreAccessError as exc:
        raise RunError(f"object stores: {exc}") from None


def _run_with_stores(
    options: RunOptions,
    federation: Federation,
    all_sites: dict[str, Site],
    stores: LocalStores,
    run_id: str,
    run_dir: Path,
    emit: Callable[[str], None],
    timings: dict[str, float],
    t_start: float,
    status: Callable[[str], None] | None = None,
    warm: subprocess.Popen[bytes] | None = None,
) -> RunResult:
    runs_dir = run_dir.parent
    t = time.monotonic()
    object_lock = {sid: federation.policy_of(sid).retention.object_lock for sid in all_sites}
    stores.create_buckets(all_sites, object_lock)
    restored = 0
    if not stores.external:  # already running stores keep their own state
        restored = stores.restore_state(
            stores.mirrored(all_sites, fresh=True), runs_dir / STATE_DIR
        )
        stores.state_loaded = True  # the buckets now hold the whole state: save it on exit
    secrets_dir = run_dir / "secrets"
    stores.write_credentials(secrets_dir)
    # every member signs its updates and audit chain, the coordinator its audit chain
    public_keys = ensure_signing_keys(secrets_dir, [*federation.sites, federation.coordinator.id])
    if restored:
        emit(f"restored {restored} objects (ledgers, global models) from earlier local runs")
    published = stores.list_keys(federation.coordinator, f"models/{run_id}/")
    if published:
        raise RunError(
            f"run {run_id} already published global models ({len(published)} objects under "
            f"models/{run_id}/ in the coordinator's bucket): a pipeline run restarts at round 1, "
            "so it cannot continue this run id; start a new --run-id (the sites' ledgers keep "
            "what was spent)"
        )
    timings["setup_s"] = time.monotonic() - t

    t = time.monotonic()
    data_paths = prepare_data(federation, options, run_dir / "data")
    snapshot = f"local-{options.dataset}-{options.split}-seed{options.seed}"
    if options.split == "dirichlet":
        snapshot += f"-alpha{options.alpha:g}"
    uris: dict[str, tuple[str, str]] = {}
    if options.data_dir is not None:  # your own files: the URIs follow their suffixes
        snapshot = f"local-data-{files_digest(data_paths)[:16]}"
        uris = {s: data_uris(federation.sites[s], data_paths[s]) for s in federation.sites}
    sites_dir, policies_dir = write_local_config(
        all_sites,
        options.policies_dir,
        run_dir / "config",
        endpoints={},  # endpoints come from FEDPIPE_ENDPOINT_OVERRIDES (TLS settings stay)
        public_keys=public_keys,
        dataset=options.dataset,
        snapshot=snapshot,
        contracts_dir=options.sites_dir / CONTRACTS_DIR,
        data_uris=uris,
    )
    own_policies = federation
    if options.own_policies_dir is not None:
        try:
            own_policies = load_federation(options.sites_dir, options.own_policies_dir)
        except ConfigError as exc:
            raise RunError(f"--own-policies {options.own_policies_dir}: {exc}") from None
    for site_id, site in federation.sites.items():
        assert site.data is not None
        train_uri, holdout_uri = uris.get(site_id, (site.data.uri, site.data.holdout_uri))
        # each site's files go into that site's own bucket only
        stores.put_file(site, _s3_key(site, train_uri), data_paths[site_id]["train"])
        stores.put_file(site, _s3_key(site, holdout_uri), data_paths[site_id]["holdout"])
        # site setup: the site's own copy of its policy, which its validate admits runs against
        own = run_dir / "config" / "own-policies" / f"{site_id}.json"
        own.parent.mkdir(parents=True, exist_ok=True)
        own.write_text(canonical_json(own_policies.policy_of(site_id)))
        stores.put_file(site, OWN_POLICY_KEY, own, content_type="application/json")
    if protection_of(federation) == PROTECTION_HE:
        emit(_install_he_context(federation, stores))
    timings["data_s"] = time.monotonic() - t
    sizes = ", ".join(
        f"{s} {host.rows(p['train'])}+{host.rows(p['holdout'])}"
        for s, p in data_paths.items()
        if s != "_test"
    )
    if options.data_dir is not None:
        emit(
            f"data: your files in {options.data_dir} (contract {options.dataset}); "
            f"train+holdout rows per site: {sizes}; no pooled test set (no baseline)"
        )
    else:
        emit(
            f"data: {options.dataset}, {options.split} split"
            + (f" (alpha {options.alpha:g})" if options.split == "dirichlet" else "")
            + f"; train+holdout rows per site: {sizes}; "
            f"pooled test {host.rows(data_paths['_test']['test'])}"
        )

    t = time.monotonic()
    yaml_path, spec, platform = compile_federation(
        sites_dir, policies_dir, run_dir / "compiled", options.rounds
    )
    timings["compile_s"] = time.monotonic() - t
    for name in ("residency-report.json", "residency-report.md"):
        if (run_dir / "compiled" / name).is_file():
            shutil.copy2(run_dir / "compiled" / name, run_dir / name)
    params = pipeline_parameters(spec)
    arguments, unknown = pipeline_arguments(params, run_id, options)
    if unknown:
        raise RunError(f"the compiled pipeline has no parameter(s) {', '.join(unknown)}")
    settings = {**{k: v for k, v in params.items() if v is not None}, **arguments}
    members = [federation.policy_of(sid) for sid in federation.sites]
    if options.dp and members and all(p.dp.mode == "distributed" for p in members):
        dp = members[0].dp  # the compiler made the members agree
        emit(
            distributed_plan_line(
                dp.epsilon_per_round, dp.delta, dp.min_honest_sites or 0, options.rounds
            )
        )
    elif (
        options.dp and "noise_multiplier" not in options.overrides and "noise_multiplier" in params
    ):
        choice = host.fit_noise(federation, options, settings, data_paths)
        if choice.noise != float(settings["noise_multiplier"]):
            emit(
                f"DP: noise multiplier {choice.noise:g} instead of the compiled default "
                f"{float(settings['noise_multiplier']):g}, so that every site stays within its "
                "policy's epsilon per round"
            )
        arguments["noise_multiplier"] = settings["noise_multiplier"] = choice.noise
        emit(
            f"DP: worst site spends ε {choice.round_epsilon:.2f} per round, "
            f"{choice.run_epsilon:.2f} over {options.rounds} rounds (RDP); "
            "set --param noise_multiplier=X to choose yourself"
        )
    contract = federation.contracts.get(options.dataset)
    statistics = contract.encoding.statistics if contract is not None else None
    if options.dp and statistics is not None:
        emit(
            "DP: the federated_zscore statistics round charges every site one release first "
            + (
                f"(ε {statistics.epsilon:g} at its policy's δ, RDP)"
                if statistics.epsilon is not None
                else f"(noise multiplier {statistics.noise_multiplier:g})"
            )
            + ", composed with the rounds in its ledger"
        )
    emit(f"compiled {yaml_path} ({options.rounds} rounds); running it with kfp.local")

    tasks = task_map(spec)
    pipeline_name = (spec.get("pipelineInfo") or {}).get("name", "")
    progress = Progress(
        tasks,
        options.rounds,
        run_dir / "kfp",
        pipeline_name,
        run_dir / "logs" / "tasks",
        emit,
        status,
        LedgerView(
            run_id,
            tuple(federation.sites),
            {s: federation.policy_of(s).dp.delta for s in federation.sites},
            host.ledger_reader(stores, dict(federation.sites)),
        ),
    )
    owners = {s.object_store.secret_name: sid for sid, s in all_sites.items()}
    owners.update(  # the coordinator's read-only keys for each site (LocalStores.write_credentials)
        {
            coordinator_read_secret_name(s): f"{sid}/{COORDINATOR_READ}"
            for sid, s in federation.sites.items()
        }
    )
    secrets_path = run_dir / "compiled" / "task-secrets.json"
    try:
        write_secret_files(secrets_path, secret_files(platform, owners, secrets_dir))
    except ValueError as exc:
        raise RunError(f"task secrets: {exc}") from None
    env = {
        **child_env(stores.env(secrets_dir), run_dir),
        **thread_environment(options.workers),
        **options.task_env,
    }
    t = time.monotonic()
    code = execute_pipeline(
        yaml_path,
        arguments,
        run_dir,
        env,
        progress,
        options.workers,
        options.isolation,
        options.task_timeout_s,
        secrets_path,
        warm,
    )
    timings["pipeline_s"] = time.monotonic() - t
    if code != 0 or progress.failed:
        raise RunError(failure_message(progress, code, run_dir))

    t = time.monotonic()
    pipeline_dir = collect_mod.latest_pipeline_dir(run_dir / "kfp", pipeline_name)
    if pipeline_dir is None:
        raise RunError(f"kfp.local left no pipeline folder under {run_dir / 'kfp'}")
    artifacts = collect_mod.collect(pipeline_dir, tasks)
    if protection_of(federation) == PROTECTION_HE:
        artifacts = _decrypted_for_host(federation, stores, artifacts, run_dir / "decrypted")
    ledgers, composed = host.read_ledgers(stores, federation, federation.sites, run_id)
    summary = host.host_summary(
        options, federation, run_id, settings, artifacts, data_paths, ledgers, composed
    )
    timings["host_s"] = time.monotonic() - t
    timings["total_s"] = time.monotonic() - t_start
    summary["timings_s"] = {k: round(v, 2) for k, v in timings.items()}
    rows = stage_times(progress.seconds, progress.body, {n: i.stage for n, i in tasks.items()})
    summary["stage_times"] = [
        {**dataclasses.asdict(r), "outside_share": round(r.outside_share, 4)} for r in rows
    ]
    host.write_outputs(run_dir, summary, artifacts)
    host.print_result(summary, run_dir, emit)
    for line in format_stage_times(rows, timings["pipeline_s"], options.isolation, progress.warm):
        emit(line)
    return RunResult(run_id, run_dir, summary, timings, progress.seconds, progress.body)
