"""`fedpipe run --local`: the whole federation on this machine, through kfp.local.

Steps: load sites/policies; start one S3-compatible server per site and a GCS emulator for
the coordinator (state restored from `<runs>/.state`); per-site credentials and Ed25519
signing keys under `<run>/secrets` (0600); local copies of the site files (local public
key, dataset; endpoints via FEDPIPE_ENDPOINT_OVERRIDES); data prepared from scikit-learn's bundled set and uploaded to each site's
bucket; the federation compiled into `<run>/compiled`; the pipeline executed with kfp.local in
a child process (two independent tasks at a time by default, `pipelines.local_run.parallel`)
whose output becomes one progress line per task; then the host scores every global
model on the pooled test set, trains the centralized baseline, reads the site ledgers and
writes `summary.json`, `report.html`, `report.md`, the global model and the residency report.
Servers are stopped and bucket state saved on every exit path (Ctrl-C included).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from components.common.secrets import MissingSecretError
from pipelines.config.loader import Federation, load_federation
from pipelines.config.models import Site
from pipelines.local_run import collect as collect_mod
from pipelines.local_run.progress import (
    LogParser,
    TaskInfo,
    describe,
    error_lines,
    format_line,
    task_map,
)
from pipelines.local_run.siteconf import write_local_config
from pipelines.local_run.stores import LocalStores, configured_endpoints, ensure_signing_keys
from pipelines.localstack.servers import ServerStartError

RUN_ID_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
PIPELINE_FILE = "federated-training.yaml"
STATE_DIR = ".state"


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
    workers: int = 2  # tasks run at once (1 = kfp.local's own sequential orchestrator)
    overrides: dict[str, Any] = field(default_factory=dict)  # extra pipeline parameters
    task_env: dict[str, str] = field(default_factory=dict)  # extra env of every task (bench)


@dataclass
class RunResult:
    """Where a finished run's outputs are, plus its summary and timings."""

    run_id: str
    run_dir: Path
    summary: dict[str, Any]
    timings: dict[str, float]
    task_seconds: dict[str, float]


def default_run_id(now: datetime | None = None) -> str:
    """`local-YYYYMMDD-HHMMSS` (UTC)."""
    return (now or datetime.now(UTC)).strftime("local-%Y%m%d-%H%M%S")


def check_run_id(run_id: str) -> str:
    if not RUN_ID_RE.fullmatch(run_id):
        raise RunError(f"--run-id {run_id!r}: use 1-63 characters a-z, 0-9 and '-'")
    return run_id


def check_dp_off_allowed(federation: Federation) -> None:
    """--no-dp only when every site's governing policy sets dp.allow_dp_off."""
    refusing = [
        f"{sid} (policy {federation.policy_of(sid).id})"
        for sid in federation.sites
        if not federation.policy_of(sid).dp.allow_dp_off
    ]
    if refusing:
        raise RunError(
            "--no-dp refused: dp.allow_dp_off is false in the policies of " + ", ".join(refusing)
        )


@contextlib.contextmanager
def exclusive_lock(path: Path, what: str) -> Iterator[None]:
    """Hold an exclusive flock on `path` or raise RunError naming `what`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle = path.open("a")
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RunError(f"{what} is in use by another fedpipe run ({path})") from None
        yield
    finally:
        handle.close()


@contextlib.contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM raises KeyboardInterrupt (main thread only), so servers stop and state is saved."""
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def update_latest(runs_dir: Path, run_id: str) -> None:
    """Point `<runs>/latest` at `run_id` (relative symlink, replaced atomically)."""
    link = runs_dir / "latest"
    tmp = runs_dir / f".latest-{os.getpid()}"
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    tmp.symlink_to(run_id)
    tmp.replace(link)


def compile_federation(sites_dir: Path, policies_dir: Path, out_dir: Path, rounds: int) -> Path:
    """Compile through `fedpipe compile` (residency-checked); returns the YAML path."""
    import io

    from pipelines.cli import main as cli_main

    out_dir.mkdir(parents=True, exist_ok=True)
    argv = [
        "compile",
        "--sites",
        str(sites_dir),
        "--policies",
        str(policies_dir),
        "--out",
        str(out_dir),
        "--rounds",
        str(rounds),
    ]
    err = io.StringIO()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
        code = cli_main(argv)
    if code != 0:
        raise RunError(f"compile failed (exit {code}):\n{err.getvalue().strip()}")
    path = out_dir / PIPELINE_FILE
    if not path.is_file():
        found = sorted(out_dir.glob("*.yaml"))
        if not found:
            raise RunError(f"compile wrote no pipeline YAML to {out_dir}")
        path = found[0]
    return path


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


def _s3_key(site: Site, uri: str) -> str:
    prefix = f"s3://{site.object_store.bucket}/"
    if not uri.startswith(prefix):
        raise RunError(f"site {site.id}: data URI {uri} is not in its bucket {prefix}")
    return uri[len(prefix) :]


def prepare_data(
    federation: Federation, options: RunOptions, data_dir: Path
) -> dict[str, dict[str, Path]]:
    """Split the dataset over the member sites (B1's preparation); CSVs under `data_dir`."""
    from components.datasets.prepare import prepare_local

    alpha = options.alpha if options.split == "dirichlet" else None
    return prepare_local(
        options.dataset, list(federation.sites), data_dir, seed=options.seed, alpha=alpha
    )


class Progress:
    """Turns kfp.local's stdout into one line per finished task (plus per-round headers)."""

    def __init__(
        self,
        tasks: dict[str, TaskInfo],
        rounds: int,
        pipeline_root: Path,
        pipeline_name: str,
        logs_dir: Path,
        emit: Callable[[str], None],
        status: Callable[[str], None] | None = None,
    ) -> None:
        self.tasks = tasks
        self.status = status
        self.rounds = rounds
        self.pipeline_root = pipeline_root
        self.pipeline_name = pipeline_name
        self.logs_dir = logs_dir
        self.emit = emit
        self.parser = LogParser()
        self.t0 = time.monotonic()
        self.started: dict[str, float] = {}
        self.seconds: dict[str, float] = {}
        self.failed: tuple[TaskInfo, list[str], str] | None = None
        self.epsilon: dict[str, float] = {}
        self.current_round: int | None = None
        self.pipeline_status: str | None = None

    def info(self, name: str) -> TaskInfo:
        return self.tasks.get(name) or TaskInfo(name, name, None, None)

    def feed(self, line: str) -> None:
        for event in self.parser.feed(line):
            if event.kind == "start":
                self.started[event.task] = time.monotonic()
                info = self.info(event.task)
                if (
                    info.round_index
                    and info.stage not in {"validate", "initialize", "report"}
                    and info.round_index != self.current_round
                ):
                    self.current_round = info.round_index
                    self.emit(f"── round {info.round_index}/{self.rounds} " + "─" * 50)
            elif event.kind == "finish":
                self._finished(event.task, event.status, event.log)
            elif event.kind == "pipeline":
                self.pipeline_status = event.status
            self._show_running()

    def running(self) -> list[str]:
        """'stage site rN' of the tasks started and not finished yet."""
        out = []
        for name in self.started:
            if name in self.seconds:
                continue
            info = self.info(name)
            where = f" r{info.round_index}" if info.round_index else ""
            out.append(f"{info.stage} {info.site_id or ''}{where}".replace("  ", " "))
        return out

    def _show_running(self) -> None:
        if self.status is not None:
            now = self.running()
            elapsed = time.monotonic() - self.t0
            self.status(f"[{elapsed:6.1f}s] running: {', '.join(now)}" if now else "")

    def _finished(self, name: str, status: str, log: list[str]) -> None:
        info = self.info(name)
        elapsed = time.monotonic() - self.t0
        self.seconds[name] = time.monotonic() - self.started.get(name, self.t0)
        self.logs_dir.mkdir(parents=True, exist_ok=True)
        log_path = self.logs_dir / f"{name}.log"
        if not log_path.exists():  # the parallel scheduler wrote it already
            log_path.write_text("\n".join(log) + "\n")
        if status != "SUCCESS":
            self.failed = (info, log, str(log_path))
            tail = error_lines(log, limit=1)
            self.emit(
                format_line(
                    elapsed, info, self.rounds, f"FAILED: {tail[0] if tail else ''}", ok=False
                )
            )
            return
        pipeline_dir = collect_mod.latest_pipeline_dir(self.pipeline_root, self.pipeline_name)
        docs = collect_mod.task_documents(pipeline_dir / name) if pipeline_dir else {}
        text = describe(info, docs)
        self.emit(format_line(elapsed, info, self.rounds, text))
        if info.stage == "train" and info.site_id and "meta.json" in docs:
            meta = docs["meta.json"]
            if meta.get("epsilon") is not None:
                self.epsilon[info.site_id] = self.epsilon.get(info.site_id, 0.0) + float(
                    meta["epsilon"]
                )
        if info.stage == "aggregate" and self.epsilon:
            spent = ", ".join(f"{s} {e:.2f}" for s, e in sorted(self.epsilon.items()))
            self.emit(f"{'':9} ε spent this run (sum of rounds, RDP): {spent}")


def _child_env(stores_env: dict[str, str], run_dir: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(stores_env)
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    env.setdefault("PYTHONWARNINGS", "ignore::FutureWarning,ignore::DeprecationWarning")
    env["PYTHONUNBUFFERED"] = "1"
    env["FEDPIPE_GENERATED_DIR"] = str(run_dir / "generated")
    env["FEDPIPE_RUN_DIR"] = str(run_dir)
    return env


def _terminate(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


def execute_pipeline(
    yaml_path: Path,
    arguments: dict[str, Any],
    run_dir: Path,
    env: dict[str, str],
    progress: Progress,
    workers: int = 1,
) -> int:
    """Run the pipeline in a child process (own process group); feed its stdout to progress."""
    args_path = run_dir / "compiled" / "arguments.json"
    args_path.write_text(json.dumps(arguments, indent=1, sort_keys=True))
    log_path = run_dir / "logs" / "kfp.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    cmd = [
        sys.executable,
        "-m",
        "pipelines.local_run.kfp_child",
        str(yaml_path),
        str(run_dir / "kfp"),
        str(args_path),
        str(workers),
        str(progress.logs_dir),
    ]
    proc = subprocess.Popen(
        cmd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        text=True,
        bufsize=1,
        env=env,
        start_new_session=True,  # Ctrl-C reaches us; we stop the child's group ourselves
    )
    try:
        with log_path.open("w") as log:
            assert proc.stdout is not None
            for line in proc.stdout:
                log.write(line)
                progress.feed(line)
        return proc.wait()
    finally:
        _terminate(proc)


def read_ledgers(
    stores: LocalStores, federation: Federation, sites: dict[str, Site], run_id: str
) -> tuple[dict[str, dict[str, Any]], dict[str, dict[int, tuple[float | None, float | None]]]]:
    """Per site: this run's and the lifetime epsilon, re-accounted from the ledger entries;
    and per site and round the run's epsilon composed up to that round (RDP, PLD)."""
    from components.privacy.accounting import epsilons
    from components.privacy.ledger import LedgerEntry, ledger_summary, site_prefix

    totals: dict[str, dict[str, Any]] = {}
    composed: dict[str, dict[int, tuple[float | None, float | None]]] = {}
    for site_id, site in sites.items():
        delta = federation.policy_of(site_id).dp.delta
        entries = []
        for key in stores.list_keys(site, site_prefix(site_id)):
            data = stores.get_bytes(site, key)
            if data is not None:
                entries.append(LedgerEntry.from_json(data, f"{site_id}:{key}"))
        mine = [e for e in entries if e.run_id == run_id]
        run_sum = ledger_summary(mine, delta)
        life = ledger_summary(entries, delta)
        totals[site_id] = {
            "epsilon": run_sum["lifetime_epsilon"],
            "epsilon_pld": run_sum["lifetime_epsilon_pld"],
            "run_entries": run_sum["entries"],
            "lifetime_epsilon": life["lifetime_epsilon"],
            "lifetime_epsilon_pld": life["lifetime_epsilon_pld"],
            "lifetime_entries": life["entries"],
            "delta": delta,
        }
        per_round: dict[int, tuple[float | None, float | None]] = {}
        for rnd in sorted({e.round for e in mine}):
            eps = epsilons([e.event for e in mine if e.round <= rnd], delta)
            per_round[rnd] = (_finite(eps.rdp), _finite(eps.pld))
        composed[site_id] = per_round
    return totals, composed


def _finite(value: float) -> float | None:
    return float(value) if value == value and value not in (float("inf"), float("-inf")) else None


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
    if not options.dp:
        check_dp_off_allowed(federation)
    if options.rounds < 1:
        raise RunError("--rounds must be >= 1")
    run_id = check_run_id(options.run_id or default_run_id())
    runs_dir = options.runs_dir.resolve()
    run_dir = runs_dir / run_id
    if (run_dir / "summary.json").is_file():
        raise RunError(
            f"run {run_id} already finished ({run_dir / 'summary.json'}); rerunning it would "
            "add nothing. Pick a new --run-id (or omit it)."
        )
    resuming = run_dir.exists()
    with exclusive_lock(runs_dir / ".lock", f"runs folder {runs_dir}"), _sigterm_as_interrupt():
        run_dir.mkdir(parents=True, exist_ok=True)
        update_latest(runs_dir, run_id)
        if resuming:
            emit(
                f"resuming run {run_id}: rounds whose updates were exported are not trained "
                "again (no privacy budget is spent twice)"
            )
        stores = LocalStores()
        all_sites = federation.all_sites
        try:
            t = time.monotonic()
            try:
                configured = configured_endpoints(
                    federation.sites, federation.coordinator, os.environ
                )
                if configured is None:
                    stores.start(federation.sites, federation.coordinator)
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
            )
        finally:
            if stores.state_loaded:  # never replace the saved state with a partial one
                try:
                    saved = stores.save_state(all_sites, runs_dir / STATE_DIR)
                    emit(f"bucket state saved ({saved} objects) to {runs_dir / STATE_DIR}")
                except Exception as exc:
                    emit(f"WARNING: bucket state not saved ({exc}); {runs_dir / STATE_DIR} kept")
            stores.stop()


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
) -> RunResult:
    runs_dir = run_dir.parent
    t = time.monotonic()
    object_lock = {sid: federation.policy_of(sid).retention.object_lock for sid in all_sites}
    stores.create_buckets(all_sites, object_lock)
    restored = 0
    if not stores.external:  # already running stores keep their own state
        restored = stores.restore_state(all_sites, runs_dir / STATE_DIR)
        stores.state_loaded = True  # the buckets now hold the whole state: save it on exit
    secrets_dir = run_dir / "secrets"
    stores.write_credentials(secrets_dir)
    public_keys = ensure_signing_keys(secrets_dir, list(federation.sites))
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
    sites_dir, policies_dir = write_local_config(
        all_sites,
        options.policies_dir,
        run_dir / "config",
        endpoints={},  # endpoints come from FEDPIPE_ENDPOINT_OVERRIDES (TLS settings stay)
        public_keys=public_keys,
        dataset=options.dataset,
        snapshot=snapshot,
    )
    for site_id, site in federation.sites.items():
        assert site.data is not None
        stores.put_file(site, _s3_key(site, site.data.uri), data_paths[site_id]["train"])
        stores.put_file(site, _s3_key(site, site.data.holdout_uri), data_paths[site_id]["holdout"])
    timings["data_s"] = time.monotonic() - t
    sizes = ", ".join(
        f"{s} {_rows(p['train'])}+{_rows(p['holdout'])}"
        for s, p in data_paths.items()
        if s != "_test"
    )
    emit(
        f"data: {options.dataset}, {options.split} split"
        + (f" (alpha {options.alpha:g})" if options.split == "dirichlet" else "")
        + f"; train+holdout rows per site: {sizes}; pooled test {_rows(data_paths['_test']['test'])}"
    )

    t = time.monotonic()
    yaml_path = compile_federation(sites_dir, policies_dir, run_dir / "compiled", options.rounds)
    timings["compile_s"] = time.monotonic() - t
    for name in ("residency-report.json", "residency-report.md"):
        if (run_dir / "compiled" / name).is_file():
            shutil.copy2(run_dir / "compiled" / name, run_dir / name)
    spec = yaml.safe_load(yaml_path.read_text().split("\n---\n")[0])
    params = pipeline_parameters(spec)
    arguments, unknown = pipeline_arguments(params, run_id, options)
    if unknown:
        raise RunError(f"the compiled pipeline has no parameter(s) {', '.join(unknown)}")
    settings = {**{k: v for k, v in params.items() if v is not None}, **arguments}
    if options.dp and "noise_multiplier" not in options.overrides and "noise_multiplier" in params:
        choice = _fit_noise(federation, options, settings, data_paths)
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
    )
    env = {**_child_env(stores.env(secrets_dir), run_dir), **options.task_env}
    t = time.monotonic()
    code = execute_pipeline(yaml_path, arguments, run_dir, env, progress, options.workers)
    timings["pipeline_s"] = time.monotonic() - t
    if code != 0 or progress.failed:
        raise RunError(_failure_message(progress, code, run_dir))

    t = time.monotonic()
    pipeline_dir = collect_mod.latest_pipeline_dir(run_dir / "kfp", pipeline_name)
    if pipeline_dir is None:
        raise RunError(f"kfp.local left no pipeline folder under {run_dir / 'kfp'}")
    artifacts = collect_mod.collect(pipeline_dir, tasks)
    ledgers, composed = read_ledgers(stores, federation, federation.sites, run_id)
    summary = _host_summary(
        options, federation, run_id, settings, artifacts, data_paths, ledgers, composed
    )
    timings["host_s"] = time.monotonic() - t
    timings["total_s"] = time.monotonic() - t_start
    summary["timings_s"] = {k: round(v, 2) for k, v in timings.items()}
    _write_outputs(run_dir, summary, artifacts)
    _print_result(summary, run_dir, emit)
    return RunResult(run_id, run_dir, summary, timings, progress.seconds)


def _fit_noise(
    federation: Federation,
    options: RunOptions,
    settings: dict[str, Any],
    data_paths: dict[str, dict[str, Path]],
):
    from pipelines.local_run.dpfit import fit_noise

    try:
        return fit_noise(
            {s: _rows(data_paths[s]["train"]) for s in federation.sites},
            {
                s: (federation.policy_of(s).dp.epsilon_per_round, federation.policy_of(s).dp.delta)
                for s in federation.sites
            },
            batch_size=int(settings.get("batch_size") or 32),
            local_epochs=int(settings.get("local_epochs") or 1),
            rounds=options.rounds,
            floor=float(settings["noise_multiplier"]),
        )
    except ValueError as exc:
        raise RunError(str(exc)) from None


def _rows(path: Path) -> int:
    with path.open() as handle:
        return max(0, sum(1 for _ in handle) - 1)


def _failure_message(progress: Progress, code: int, run_dir: Path) -> str:
    if progress.failed:
        info, log, log_path = progress.failed
        where = f"site {info.site_id}" if info.site_id else "no site"
        rnd = f", round {info.round_index}" if info.round_index else ""
        lines = "\n".join("    " + x for x in error_lines(log))
        return (
            f"task {info.name} ({info.stage}, {where}{rnd}) failed:\n{lines}\n"
            f"  task log: {log_path}\n  full log: {run_dir / 'logs' / 'kfp.log'}\n"
            f"  rerun with the same --run-id to resume; exported rounds are not trained again"
        )
    return f"the pipeline process exited with code {code}; see {run_dir / 'logs' / 'kfp.log'}"


def _host_summary(
    options: RunOptions,
    federation: Federation,
    run_id: str,
    settings: dict[str, Any],
    artifacts: collect_mod.RunArtifacts,
    data_paths: dict[str, dict[str, Path]],
    ledgers: dict[str, dict[str, Any]],
    composed: dict[str, dict[int, tuple[float | None, float | None]]],
) -> dict[str, Any]:
    from components.common.global_model import read_global_model
    from components.report.executor import read_json_artifact
    from components.report.summary import build_summary
    from pipelines.local_run.scoring import centralized_baseline, load_pooled, score_tensors

    model_name = str(settings.get("model_name") or "")
    pooled = load_pooled(
        options.dataset,
        [p["train"] for s, p in data_paths.items() if s != "_test"],
        data_paths["_test"]["test"],
    )
    test_scores: dict[int, dict[str, float]] = {}
    for rnd, folder in sorted(artifacts.global_models.items()):
        gm = read_global_model(folder)
        model_name = model_name or str(gm.meta.get("model_name"))
        test_scores[rnd] = score_tensors(model_name, gm.tensors, pooled)
    baseline = None
    if options.baseline:
        local_epochs = int(settings.get("local_epochs") or 1)
        baseline = centralized_baseline(
            model_name,
            pooled,
            epochs=options.rounds * local_epochs,
            batch_size=int(settings.get("batch_size") or 32),
            learning_rate=float(settings.get("learning_rate") or 0.1),
            seed=options.seed,
        )
    summary = build_summary(
        [read_json_artifact(p, "round.json") for _, p in sorted(artifacts.round_reports.items())],
        [
            read_json_artifact(p, "metrics.json")
            for _, per_site in sorted(artifacts.evaluations.items())
            for _, p in sorted(per_site.items())
        ],
        run_id=run_id,
        dataset=options.dataset,
        model_name=model_name,
        sites=list(federation.sites),
        test_accuracy=test_scores,
        baseline=baseline,
        ledgers=ledgers,
        composed=composed,
        dp_enabled=options.dp,
        validations={
            s: read_json_artifact(p, "summary.json") for s, p in artifacts.validations.items()
        },
    )
    summary["ledgers"] = ledgers
    summary["settings"] = {
        "rounds": options.rounds,
        "split": options.split,
        "alpha": options.alpha if options.split == "dirichlet" else None,
        "seed": options.seed,
        "pipeline_parameters": settings,
    }
    return summary


def _write_outputs(
    run_dir: Path, summary: dict[str, Any], artifacts: collect_mod.RunArtifacts
) -> None:
    from components.report.executor import write_report

    final_round = max(artifacts.global_models, default=None)
    if final_round is not None:
        target = run_dir / "global_model"
        if target.exists():
            shutil.rmtree(target)
        shutil.copytree(artifacts.global_models[final_round], target)
    write_report(summary, run_dir / "report.html", run_dir / "report.md")
    tmp = run_dir / "summary.json.tmp"
    tmp.write_text(json.dumps(summary, indent=1, sort_keys=True))
    tmp.replace(run_dir / "summary.json")  # last: its presence marks a finished run


def _print_result(summary: dict[str, Any], run_dir: Path, emit: Callable[[str], None]) -> None:
    final = summary.get("final") or {}
    baseline = summary.get("baseline") or {}

    def pct(v: Any) -> str:
        return "–" if v is None else f"{100 * float(v):.2f}%"

    emit("─" * 72)
    emit(
        f"federated test accuracy {pct(final.get('test_accuracy'))} "
        f"(site holdouts {pct(final.get('accuracy'))}); "
        f"centralized baseline {pct(baseline.get('test_accuracy'))}"
    )
    for site, entry in (summary.get("ledgers") or {}).items():
        rdp, pld = entry.get("epsilon"), entry.get("epsilon_pld")
        life = entry.get("lifetime_epsilon")
        emit(
            f"  {site:<18} ε this run {_eps(rdp)} (RDP) / {_eps(pld)} (PLD); "
            f"lifetime ledger {_eps(life)}"
        )
    emit(f"outputs: {run_dir}/ (summary.json, report.html, global_model/, residency-report.md)")


def _eps(value: Any) -> str:
    return "–" if value is None else f"{float(value):.3f}"
