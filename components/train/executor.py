"""`train` executor: budget check, then local DP-SGD from the global model (components/CONTRACT.md).

Order of decisions (each leaves `meta.json` saying why):
1. inputs cross-checked once into a `SiteTask` (`components.common.site_task`, built by the
   caller); wrong wiring raises `TaskInputError`.
2. resume: if this (run, round, site)'s export already exists in the site's bucket, nothing is
   trained or spent (`status: "resumed"`); export then verifies and references that object.
3. validation failed -> abstain (reason from the summary).
4. DP off without the policy's `dp.allow_dp_off` -> `DpPolicyError` (validate refused it
   already, before any site trained: `components.privacy.dp_off`; asked again here).
5. data unreadable / breaks the contract / too small for the batch -> abstain.
6. budget: the planned event plus the ledger, re-accounted, must fit `dp.epsilon_per_round` and
   `dp.lifetime_epsilon` -> else abstain *before training*, nothing charged.
7. charge: a ledger entry is written create-only *before* training (every attempt that could
   publish is charged, retries included), re-checked against the lifetime budget (a concurrent
   charge may have landed), then the model is trained and `model.npz` written.

Distributed DP (`dp.mode: distributed` in the site's policy, DP on): the planned event is one
round of the Skellam mechanism (`components.privacy.skellam.round_plan`: mu calibrated to the
policy's `dp.epsilon_per_round` for this model's size), charged as a `distributed` ledger entry
that states the honest-site assumption; the site then trains *without* per-example noise
(plain SGD on shuffled batches, seeded by `seed`): the masked export clips the delta and adds
the site's Skellam share, and the update leaves the site only masked.

Noise mode: `noise_seed=None` (default, production) seeds TensorFlow's noise RNG from OS
entropy; an int (or env `FEDPIPE_DP_NOISE_SEED`, simulation only) makes the noise
reproducible and is recorded as `dp.noise: "seeded-simulation"` (see `components.train.dpsgd`).
Sampling (`dp_sampling`): Poisson by default, which is what the accountant proves epsilon
for (q = batch_size / N); its inclusion draws come from the OS CSPRNG unless a noise seed is
set (simulation). `shuffle` (explicit) trains on shuffled fixed-size batches seeded by `seed`,
and the ledger entry and `dp.guarantee` say its epsilon is not proven.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

import numpy as np

from components.audit.events import append_or_note, site_task_log, store_failure
from components.common.artifact_files import (
    MANIFEST_SUFFIX,
    META_FILE,
    MODEL_FILE,
    json_bytes,
    validation_failure,
)
from components.common.create_only import STORE_ERRORS, read_or_none, sse_for_policy
from components.common.global_model import GlobalModel
from components.common.manifest import ManifestError, SignedManifest, update_object_key
from components.common.secrets import MissingSecretError
from components.common.site_task import SiteTask, TaskInputError
from components.common.tensors import dump_tensors
from components.datasets.features import DataError, fit_scaler, frame_to_arrays, scale_target
from components.datasets.federated_stats import published_scaling
from components.datasets.io import ClientFactory, read_site_table, site_client_factory
from components.datasets.site import check_own_bucket
from components.domain.contract import ContractError, check_private_scaling
from components.he.global_model import site_global_model
from components.privacy.accounting import (
    SAMPLING_POISSON,
    DpSgdEvent,
    Event,
    dp_sgd_event,
    sampling_guarantee,
)
from components.privacy.dp_off import DpPolicyError, require_dp_allowed
from components.privacy.ledger import (
    BudgetDecision,
    LedgerEntry,
    LedgerError,
    check_budget,
    ledger_summary,
    new_distributed_entry,
    new_entry,
)
from components.privacy.ledger_store import LedgerStore, ledger_retention_days
from components.privacy.skellam import (
    DISTRIBUTED_DELTA_CLIP,
    MODE_DISTRIBUTED,
    SkellamEvent,
    round_plan,
)
from components.train.dpsgd import DpSgdConfig, TrainingError, TrainResult, train_dp_sgd

__all__ = ["Abstain", "DpPolicyError", "TrainSettings", "run"]

NOISE_SEED_ENV = "FEDPIPE_DP_NOISE_SEED"
SAMPLING_TEXT = {
    "poisson": "Poisson: each example in each step with probability q, variable batch size",
    "shuffle": "shuffled fixed-size batches, a fresh permutation per epoch, remainder dropped",
}
ACCOUNTING = (
    "dp-accounting RDP (enforced) and PLD of Poisson subsampling with "
    "q = batch_size / num_examples; add-or-remove-one record; per-example clipping"
)


def _derive_seed(base: int, *parts: str | int) -> int:
    """A 62-bit seed from `base` and the task identity (different per site/round/attempt)."""
    text = json.dumps([int(base), *[str(p) for p in parts]])
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big") >> 2


def _write(folder: Path, meta: dict[str, Any], tensors: dict | None) -> dict[str, Any]:
    data = json_bytes(meta)  # NaN refused before anything is written
    folder.mkdir(parents=True, exist_ok=True)
    if tensors is not None:
        (folder / MODEL_FILE).write_bytes(dump_tensors(tensors))
    (folder / META_FILE).write_bytes(data)
    return meta


def _base_meta(task: SiteTask, model_name: str, dataset: str) -> dict[str, Any]:
    return {
        "site_id": task.site.id,
        "run_id": task.run_id,
        "round": task.round_index,
        "model_name": model_name,
        "dataset": dataset,
        "status": None,
        "reason": None,
        "num_examples": None,
        "dp": None,
        "epsilon": None,
        "epsilon_pld": None,
        "delta": task.policy.dp.delta,
        "ledger": None,
    }


def _existing_export(client: Any, bucket: str, key: str) -> SignedManifest | None:
    data = read_or_none(client, bucket, key)
    return None if data is None else SignedManifest.from_json(data)


@dataclass(frozen=True)
class TrainSettings:
    """The stage settings of one train task (pipeline parameters, from the admission)."""

    dataset: str
    model_name: str
    local_epochs: int
    batch_size: int
    learning_rate: float
    noise_multiplier: float
    l2_norm_clip: float
    dp_enabled: bool
    dp_sampling: str
    seed: int

    @staticmethod
    def of(task: SiteTask) -> TrainSettings:
        """The train settings of `task`; TaskInputError naming any the task lacks."""
        names = [f.name for f in fields(TrainSettings)]
        task.require(*names)
        return TrainSettings(**{n: getattr(task.settings, n) for n in names})

    def dpsgd(self) -> DpSgdConfig:
        return DpSgdConfig(
            batch_size=self.batch_size,
            local_epochs=self.local_epochs,
            learning_rate=self.learning_rate,
            noise_multiplier=self.noise_multiplier,
            l2_norm_clip=self.l2_norm_clip,
            dp_enabled=self.dp_enabled,
            sampling=self.dp_sampling,
        )


@dataclass(frozen=True)
class SiteTable:
    """The site's training table as the trainer takes it: scaled features, labels, rows."""

    x: np.ndarray
    y: np.ndarray
    num_examples: int


def run(
    task: SiteTask,
    *,
    validation: str,
    global_model: str,
    local_model: str | Path,
    client_factory: ClientFactory | None = None,
    noise_seed: int | None = None,
    now: dt.datetime | None = None,
    audit: bool = False,
) -> dict[str, Any]:
    """Train (or abstain, or resume) and write `<local_model>/meta.json` (+ `model.npz`).

    `audit` (the component sets it): the ε charge, or the abstention with its reason, is
    appended to the site's audit chain (`components.audit.events`), signed with its key.

    The phases run in the module doc's order; an `Abstain` from any of them is written once.
    `client_factory` (tests) replaces the minio client built from the site spec + secrets;
    `noise_seed` makes DP noise reproducible (simulation/tests only, see module doc);
    `now` fixes the ledger timestamp. Returns the meta written.
    """
    settings = TrainSettings.of(task)
    local_model = Path(local_model)
    gm = _starting_model(task, settings, global_model, client_factory)
    base_noise_seed = _noise_base(noise_seed)
    meta = {**_base_meta(task, settings.model_name, settings.dataset), "global_version": gm.version}
    log = None
    try:
        client = _connect(task, client_factory)
        if audit:
            log = site_task_log(task, client)
        resumed = _resume(task, client, meta)  # 2.
        if resumed is not None:
            return _write(local_model, resumed, None)
        _admit(task, settings, validation)  # 3. and 4.
        table = _read_table(task, settings, client, meta, gm.meta)  # 5.
        event = _planned_event(task, settings, table.num_examples, _size(gm.tensors))
        store = LedgerStore(
            client,
            task.site.object_store.bucket,
            task.site_id,
            sse=_sse(task),
            retention_days=ledger_retention_days(task.policy),
        )
        decision = _check_budget(task, settings, store, event, meta)  # 6.
        entry, summary = _charge(task, settings, store, event, table.num_examples, now, meta)
    except Abstain as abstain:
        abstained = {**meta, "status": "abstained", "reason": abstain.reason}
        if log is not None:  # the store that made the site abstain may be down
            body = {"round": task.round_index, "reason": abstain.reason, "summary": abstain.reason}
            note = append_or_note(
                lambda: log.append("abstain", body), task.site.object_store.bucket
            )
            if note is not None:
                abstained["audit"] = note
        return _write(local_model, _leaving_meta(task, abstained), None)
    if log is not None:
        log.append("charge", _charge_record(task, entry, summary))
    result = _train(task, settings, gm.tensors, table, event, entry, base_noise_seed)  # 7.
    meta.update(_trained_meta(task, settings, event, entry, summary, decision, result))
    return _write(local_model, meta, result.tensors)


def _charge_record(task: SiteTask, entry: LedgerEntry, summary: dict[str, Any]) -> dict[str, Any]:
    """The audit body of a ledger charge (the chain stays in the site's own bucket)."""
    from components.privacy.accounting import rdp_epsilon

    spent = rdp_epsilon([entry.event], entry.delta) if not entry.non_private else None
    total = summary.get("lifetime_epsilon")
    return {
        "round": task.round_index,
        "attempt": entry.attempt,
        "entry_key": entry.key,
        "epsilon": spent if spent is None or np.isfinite(spent) else None,
        "lifetime_epsilon": total,
        "delta": entry.delta,
        "summary": (
            "charged without DP (unbounded)"
            if spent is None
            else f"ε {spent:.3f} charged, ledger total {total if total is None else f'{total:.3f}'}"
        ),
    }


# Ledger-summary fields that are figures of the site's spending (functions of N).
_LEDGER_FIGURES = ("lifetime_epsilon", "lifetime_epsilon_pld", "round_epsilon")


def _hides_count(task: SiteTask) -> bool:
    return not task.policy.export.reveal_num_examples


def _leaving_meta(task: SiteTask, meta: dict[str, Any]) -> dict[str, Any]:
    """An abstained meta.json leaves the site (KFP uploads it to the pipeline root): when the
    policy hides the sample count, it carries neither the count nor the ledger's epsilons
    (they give the count away); the site's own ledger keeps them."""
    if not _hides_count(task):
        return meta
    ledger = meta.get("ledger")
    if isinstance(ledger, dict):
        ledger = {k: v for k, v in ledger.items() if k not in _LEDGER_FIGURES}
    return {**meta, "num_examples": None, "ledger": ledger}


class Abstain(Exception):
    """The site sits this round out; `reason` goes into meta.json (`status: abstained`)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _noise_base(noise_seed: int | None) -> int | None:
    """`noise_seed`, else env FEDPIPE_DP_NOISE_SEED (simulation only), else None (OS entropy)."""
    env_seed = os.environ.get(NOISE_SEED_ENV)
    return noise_seed if noise_seed is not None else (int(env_seed) if env_seed else None)


def _sse(task: SiteTask) -> Any:
    return sse_for_policy(task.policy, task.site_id)


def _starting_model(
    task: SiteTask,
    settings: TrainSettings,
    folder: str,
    client_factory: ClientFactory | None = None,
) -> GlobalModel:
    """The round's global model (an encrypted one decrypted with the site's secret context,
    protection he); TaskInputError when it is another model or dataset."""
    gm = site_global_model(folder, task.site, client_factory or site_client_factory(task.site))
    name, dataset = gm.meta.get("model_name"), gm.meta.get("dataset")
    if name != settings.model_name or dataset != settings.dataset:
        raise TaskInputError(
            f"site {task.site_id}: global model is {name!r} on {dataset!r}, the task trains "
            f"{settings.model_name!r} on {settings.dataset!r}"
        )
    return gm


def _connect(task: SiteTask, client_factory: ClientFactory | None) -> Any:
    """A client of the site's bucket; abstain when its secrets are missing."""
    try:
        return (client_factory or site_client_factory(task.site))()
    except MissingSecretError as exc:
        raise Abstain(f"site {task.site_id}: cannot reach its bucket: {exc}") from None


def _resume(task: SiteTask, client: Any, meta: dict[str, Any]) -> dict[str, Any] | None:
    """2. The resumed meta when this (run, round, site)'s export exists, else None."""
    bucket, site_id = task.site.object_store.bucket, task.site_id
    key = update_object_key(task.run_id, task.round_index, site_id) + MANIFEST_SUFFIX
    try:
        existing = _existing_export(client, bucket, key)
    except STORE_ERRORS as exc:
        raise Abstain(f"site {site_id}: {store_failure(bucket, exc)}") from None
    except ManifestError as exc:
        raise Abstain(
            f"site {site_id}: s3://{bucket}/{key} exists but is not a valid manifest "
            f"({exc}); the key is taken, not training"
        ) from None
    if existing is None:
        return None
    m = existing.manifest
    return {
        **meta,
        "status": "resumed",
        "reason": f"update already exported at s3://{bucket}/{key}; not retrained",
        "dp": m.dp,
        "epsilon": m.epsilon,
        "epsilon_pld": m.epsilon_pld,
        "delta": m.delta,
    }


def _admit(task: SiteTask, settings: TrainSettings, validation: str) -> None:
    """3. abstain when validation failed; 4. DpPolicyError for DP off against the policy."""
    failure = validation_failure(validation)
    if failure is not None:
        raise Abstain(f"site {task.site_id}: {failure}")
    # decided before any site trained (validate); asked again here as defence in depth
    require_dp_allowed(settings.dp_enabled, {task.site_id: task.policy})
    try:
        check_private_scaling(task.site_data().contract, settings.dp_enabled)
    except ContractError as exc:
        raise DpPolicyError(f"site {task.site_id}: {exc}") from None


def _read_table(
    task: SiteTask,
    settings: TrainSettings,
    client: Any,
    meta: dict[str, Any],
    global_meta: dict[str, Any] | None = None,
) -> SiteTable:
    """5. The scaled training table; abstain when it is unreadable, breaks the contract or is
    smaller than a batch. Sets `meta["num_examples"]` once the rows are known."""
    data, site_id = task.site_data(), task.site_id
    try:
        check_own_bucket(task.site, data.train_uri)
        frame = read_site_table(data.train_uri, lambda: client, site_id, data.contract)
        x_raw, y = frame_to_arrays(data.contract, frame, site_id, min_rows=1)
    except DataError as exc:
        raise Abstain(str(exc)) from None
    n = int(x_raw.shape[0])
    meta["num_examples"] = n
    try:
        settings.dpsgd().check(n)
    except TrainingError as exc:
        raise Abstain(f"site {site_id}: {exc}") from None
    # federated_zscore: the global mean/std published with the global model (initialize)
    published = published_scaling(data.contract, global_meta or {})
    x = fit_scaler(data.contract, x_raw, published).transform(x_raw)
    return SiteTable(x, scale_target(data.contract, y), n)


def _size(tensors: dict[str, np.ndarray]) -> int:
    return int(sum(np.asarray(t).size for t in tensors.values()))


def distributed(task: SiteTask, settings: TrainSettings) -> bool:
    """Distributed DP: the policy's `dp.mode` with DP on (DP off is refused for that mode)."""
    return settings.dp_enabled and task.policy.dp.mode == MODE_DISTRIBUTED


def _planned_event(task: SiteTask, settings: TrainSettings, n: int, dim: int) -> Event:
    """The event this training will be: one Skellam round (distributed DP, `dim` values), or
    DP-SGD's steps and q (no noise when DP is off)."""
    if distributed(task, settings):
        dp = task.policy.dp
        return round_plan(dp.epsilon_per_round, dp.delta, dp.min_honest_sites or 0, dim).round_event
    if settings.dp_enabled:
        return dp_sgd_event(
            n, settings.batch_size, settings.local_epochs, settings.noise_multiplier
        )
    planned = dp_sgd_event(n, settings.batch_size, settings.local_epochs, 1.0)
    return DpSgdEvent(planned.sampling_rate, 0.0, planned.steps, non_private=True)


def _check_budget(
    task: SiteTask,
    settings: TrainSettings,
    store: LedgerStore,
    event: DpSgdEvent,
    meta: dict[str, Any],
) -> BudgetDecision | None:
    """6. Abstain, nothing charged, when the ledger is unreadable or the planned event would
    exceed `dp.epsilon_per_round` / `dp.lifetime_epsilon`. None when DP is off."""
    policy, site_id = task.policy, task.site_id
    try:
        entries = store.entries()
    except (LedgerError, *STORE_ERRORS) as exc:
        raise Abstain(f"site {site_id}: privacy ledger unreadable, not training: {exc}") from None
    if not settings.dp_enabled:
        return None
    decision = check_budget(
        entries,
        event,
        site_id=site_id,
        run_id=task.run_id,
        round_=task.round_index,
        epsilon_per_round=policy.dp.epsilon_per_round,
        lifetime_epsilon=policy.dp.lifetime_epsilon,
        delta=policy.dp.delta,
        policy_id=policy.id,
        hide_figures=_hides_count(task),
    )
    if not decision.allowed:
        meta["ledger"] = {**ledger_summary(entries, policy.dp.delta), "refused": decision.reason}
        raise Abstain(decision.reason or "budget exceeded")
    return decision


def _charge(
    task: SiteTask,
    settings: TrainSettings,
    store: LedgerStore,
    event: Event,
    n: int,
    now: dt.datetime | None,
    meta: dict[str, Any],
) -> tuple[LedgerEntry, dict[str, Any]]:
    """7a. Charge the ledger create-only before training, then re-check the lifetime budget
    (a concurrent charge may have landed). Abstain when either fails; a charge stays."""
    policy, site_id, delta = task.policy, task.site_id, task.policy.dp.delta
    created = (now or dt.datetime.now(dt.UTC)).isoformat()

    def make_entry(attempt: int) -> LedgerEntry:
        common: dict[str, Any] = {
            "run_id": task.run_id,
            "round_": task.round_index,
            "site_id": site_id,
            "attempt": attempt,
            "delta": delta,
            "batch_size": settings.batch_size,
            "epochs": settings.local_epochs,
            "num_examples": n,
            "created_at": created,
        }
        if isinstance(event, SkellamEvent):
            return new_distributed_entry(event=event, delta_clip=DISTRIBUTED_DELTA_CLIP, **common)
        return new_entry(
            event=event,
            l2_norm_clip=settings.l2_norm_clip if settings.dp_enabled else None,
            sampling=settings.dpsgd().effective_sampling,
            **common,
        )

    try:
        entry = store.charge(task.run_id, task.round_index, make_entry)
        entries = store.entries()
    except (LedgerError, *STORE_ERRORS) as exc:
        # The charge may or may not have landed; either way nothing is trained.
        raise Abstain(f"site {site_id}: could not charge the privacy ledger: {exc}") from None
    summary = ledger_summary(entries, delta)
    lifetime = summary["lifetime_epsilon"]
    if settings.dp_enabled and (lifetime is None or lifetime > policy.dp.lifetime_epsilon):
        meta["ledger"] = {**summary, "entry_key": entry.key, "attempt": entry.attempt}
        total = "more than" if _hides_count(task) else f"{lifetime} >"
        raise Abstain(
            f"site {site_id}: after charging attempt {entry.attempt} the ledger totals epsilon "
            f"{total} {policy.id} dp.lifetime_epsilon {policy.dp.lifetime_epsilon:g} "
            "(a concurrent charge landed); not trained, the charge stays"
        )
    return entry, summary


def _train(
    task: SiteTask,
    settings: TrainSettings,
    start: dict[str, np.ndarray],
    table: SiteTable,
    event: Event,
    entry: LedgerEntry,
    noise_seed: int | None,
) -> TrainResult:
    """7b. DP-SGD from the global model; the steps must be the ones the ledger charged.
    Distributed DP: plain SGD on shuffled batches (the noise is the export's Skellam share).
    `noise_seed`: the base noise seed (`_noise_base`), None in production."""
    site_id, run_id, round_index = task.site_id, task.run_id, task.round_index
    run_noise_seed = (
        None
        if noise_seed is None
        else _derive_seed(noise_seed, "noise", site_id, run_id, round_index, entry.attempt)
    )
    config = settings.dpsgd()
    if isinstance(event, SkellamEvent):
        config = replace(config, dp_enabled=False)
    # Poisson batches must be secret to amplify privacy: OS entropy unless simulating.
    if config.effective_sampling == SAMPLING_POISSON:
        sampling_seed = (
            None
            if noise_seed is None
            else _derive_seed(noise_seed, "sampling", site_id, run_id, round_index, entry.attempt)
        )
    else:
        sampling_seed = _derive_seed(settings.seed, site_id, run_id, round_index)
    result = train_dp_sgd(
        settings.model_name,
        start,
        table.x,
        table.y,
        task.site_data().contract.num_classes,
        config,
        sampling_seed=sampling_seed,
        noise_seed=run_noise_seed,
        model_kwargs=task.site_data().contract.builder_kwargs(settings.model_name),
    )
    if isinstance(event, DpSgdEvent) and result.steps != event.steps:  # accountant = training
        raise TrainingError(
            f"site {site_id}: trained {result.steps} steps, accounted {event.steps}"
        )
    return result


def _trained_meta(
    task: SiteTask,
    settings: TrainSettings,
    event: Event,
    entry: LedgerEntry,
    summary: dict[str, Any],
    decision: BudgetDecision | None,
    result: TrainResult,
) -> dict[str, Any]:
    """The meta fields of a trained model (DP settings, epsilon charged, ledger totals)."""
    dp_on, policy = settings.dp_enabled, task.policy
    if isinstance(event, SkellamEvent):
        dp: dict[str, Any] = _distributed_dp(task, settings, event, entry, result)
    else:
        dp = {
            "enabled": dp_on,
            "noise_multiplier": settings.noise_multiplier if dp_on else None,
            "l2_norm_clip": settings.l2_norm_clip if dp_on else None,
            "batch_size": settings.batch_size,
            "local_epochs": settings.local_epochs,
            "learning_rate": settings.learning_rate,
            "sampling_rate": event.sampling_rate if dp_on else None,
            "steps": result.steps,
            "sampling": SAMPLING_TEXT[result.sampling],
            "dp_sampling": result.sampling,
            "guarantee": sampling_guarantee(result.sampling, dp_on),
            "accounting": ACCOUNTING,
            "noise": result.noise_mode if dp_on else None,
        }
    return {
        "status": "trained",
        "reason": (
            None
            if dp_on
            else f"DP off: allowed by policy {policy.id} dp.allow_dp_off; epsilon is infinite"
        ),
        "dp": dp,
        "epsilon": entry.epsilon if dp_on else None,
        "epsilon_pld": entry.epsilon_pld if dp_on else None,
        "final_loss": result.final_loss,
        # site-only (local_model meta; export copies only `dp`): drawn batch sizes reveal data
        "batch_sizes": {
            "min": min(result.batch_sizes, default=0),
            "mean": float(np.mean(result.batch_sizes)) if result.batch_sizes else 0.0,
            "max": max(result.batch_sizes, default=0),
        },
        "ledger": {
            **summary,
            "entry_key": entry.key,
            "attempt": entry.attempt,
            "round_epsilon": decision.round_epsilon if decision else None,
            "epsilon_per_round": policy.dp.epsilon_per_round,
            "lifetime_budget": policy.dp.lifetime_epsilon,
        },
    }


DISTRIBUTED_ACCOUNTING = (
    "Skellam mechanism (Agarwal, Kairouz, Liu 2021) on the secure-aggregation sum, RDP bound "
    "composed in the dp-accounting RDP accountant; record-level sensitivity 2 gamma C + sqrt(P) "
    "of the clipped, rounded delta; no subsampling amplification"
)


def _distributed_dp(
    task: SiteTask,
    settings: TrainSettings,
    event: SkellamEvent,
    entry: LedgerEntry,
    result: TrainResult,
) -> dict[str, Any]:
    """The `dp` block of a distributed-DP training (export adds the noise; it reads mu here)."""
    return {
        "enabled": True,
        "mode": MODE_DISTRIBUTED,
        "honest_sites": event.honest_sites,
        "trust": entry.trust,
        "skellam_mu": event.mu,
        "delta_clip": DISTRIBUTED_DELTA_CLIP,
        "noise_multiplier": None,
        "l2_norm_clip": None,
        "batch_size": settings.batch_size,
        "local_epochs": settings.local_epochs,
        "learning_rate": settings.learning_rate,
        "sampling_rate": None,
        "steps": result.steps,
        "sampling": SAMPLING_TEXT[result.sampling] + " (no per-example noise)",
        "dp_sampling": result.sampling,
        "guarantee": entry.guarantee,
        "accounting": DISTRIBUTED_ACCOUNTING,
        "noise": "Skellam share mu/h added to the clipped delta by the masked export",
    }
