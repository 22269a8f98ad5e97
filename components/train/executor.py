"""`train` executor: budget check, then local DP-SGD from the global model (components/CONTRACT.md).

Order of decisions (each leaves `meta.json` saying why):
1. inputs cross-checked (`components.common.site_task`); wrong wiring raises.
2. resume: if this (run, round, site)'s export already exists in the site's bucket, nothing is
   trained or spent (`status: "resumed"`); export then verifies and references that object.
3. validation failed -> abstain (reason from the summary).
4. DP off without the policy's `dp.allow_dp_off` -> `DpPolicyError` (a pipeline bug).
5. data unreadable / breaks the contract / too small for the batch -> abstain.
6. budget: the planned event plus the ledger, re-accounted, must fit `dp.epsilon_per_round` and
   `dp.lifetime_epsilon` -> else abstain *before training*, nothing charged.
7. charge: a ledger entry is written create-only *before* training (every attempt that could
   publish is charged, retries included), re-checked against the lifetime budget (a concurrent
   charge may have landed), then the model is trained and `model.npz` written.

Noise mode: `noise_seed=None` (default, production) seeds TensorFlow's noise RNG from OS
entropy; an int (or env `FEDPIPE_DP_NOISE_SEED`, simulation only) makes the noise
reproducible and is recorded as `dp.noise: "seeded-simulation"` (see `components.train.dpsgd`).
Sampling is shuffled fixed-size batches; the accountant assumes Poisson sampling with
q = batch_size / N (recorded in `dp.sampling` / `dp.accounting`).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
from pathlib import Path
from typing import Any

from components.common.artifact_files import (
    MANIFEST_SUFFIX,
    META_FILE,
    MODEL_FILE,
    SUMMARY_FILE,
    json_bytes,
)
from components.common.create_only import STORE_ERRORS, sse_for_policy
from components.common.global_model import read_global_model
from components.common.manifest import ManifestError, SignedManifest, update_object_key
from components.common.secrets import MissingSecretError
from components.common.site_task import SiteTask, TaskInputError, parse_site_task
from components.common.tensors import dump_tensors
from components.datasets.features import DataError, fit_scaler, frame_to_arrays
from components.datasets.io import ClientFactory, read_site_table, site_client_factory
from components.datasets.site import check_own_bucket
from components.privacy.accounting import DpSgdEvent, dp_sgd_event
from components.privacy.ledger import (
    LedgerEntry,
    LedgerError,
    check_budget,
    ledger_summary,
    new_entry,
)
from components.privacy.ledger_store import LedgerStore
from components.train.dpsgd import DpSgdConfig, TrainingError, train_dp_sgd

NOISE_SEED_ENV = "FEDPIPE_DP_NOISE_SEED"
SAMPLING = "shuffled fixed-size batches, a fresh permutation per epoch, remainder dropped"
ACCOUNTING = (
    "dp-accounting RDP (enforced) and PLD; Poisson subsampling assumed with "
    "q = batch_size / num_examples; add-or-remove-one record; per-example clipping"
)


class DpPolicyError(RuntimeError):
    """Training without DP where the site's policy does not allow it."""


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


def _abstain(folder: Path, meta: dict[str, Any], reason: str) -> dict[str, Any]:
    return _write(folder, {**meta, "status": "abstained", "reason": reason}, None)


def _store_failure(bucket: str, exc: BaseException) -> str:
    code = getattr(exc, "code", None) or type(exc).__name__
    return f"its bucket {bucket!r} is unreachable or refused the request ({code})"


def _existing_export(client: Any, bucket: str, key: str) -> SignedManifest | None:
    from minio.error import S3Error

    try:
        response = client.get_object(bucket, key)
    except S3Error as exc:
        if exc.code in {"NoSuchKey", "NoSuchObject", "NotFound"}:
            return None
        raise
    try:
        return SignedManifest.from_json(response.read())
    finally:
        response.close()
        response.release_conn()


def _validation_failure(folder: str) -> str | None:
    """None when the validation summary passed, else the reason to abstain."""
    path = Path(folder) / SUMMARY_FILE
    try:
        summary = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        return f"validation summary unreadable ({path}: {type(exc).__name__})"
    if summary.get("passed") is True:
        return None
    return f"validation failed: {summary.get('reason') or 'expectations not met'}"


def run(
    *,
    site_id: str,
    policy_digest: str,
    data_snapshot: str,
    site_json: str,
    policy_json: str,
    run_id: str,
    kfp_job_id: str,
    round_index: int,
    dataset: str,
    model_name: str,
    local_epochs: int,
    batch_size: int,
    learning_rate: float,
    noise_multiplier: float,
    l2_norm_clip: float,
    dp_enabled: bool,
    seed: int,
    validation: str,
    global_model: str,
    local_model: str,
    client_factory: ClientFactory | None = None,
    noise_seed: int | None = None,
    now: dt.datetime | None = None,
) -> dict[str, Any]:
    """Train (or abstain, or resume) and write `<local_model>/meta.json` (+ `model.npz`).

    `client_factory` (tests) replaces the minio client built from the site spec + secrets;
    `noise_seed` makes DP noise reproducible (simulation/tests only, see module doc);
    `now` fixes the ledger timestamp. Returns the meta written.
    """
    del data_snapshot  # a cache key only
    task = parse_site_task(
        site_id=site_id,
        policy_digest=policy_digest,
        site_json=site_json,
        policy_json=policy_json,
        run_id=run_id,
        kfp_job_id=kfp_job_id,
        round_index=round_index,
        dataset=dataset,
    )
    data = task.site_data()
    site, policy = task.site, task.policy
    out = Path(local_model)
    meta = _base_meta(task, model_name, dataset)

    gm = read_global_model(global_model)
    if gm.meta.get("model_name") != model_name or gm.meta.get("dataset") != dataset:
        raise TaskInputError(
            f"site {site_id}: global model is {gm.meta.get('model_name')!r} on "
            f"{gm.meta.get('dataset')!r}, the task trains {model_name!r} on {dataset!r}"
        )
    meta["global_version"] = gm.version

    factory = client_factory or site_client_factory(site)
    bucket = site.object_store.bucket
    try:
        client = factory()
    except MissingSecretError as exc:
        return _abstain(out, meta, f"site {site_id}: cannot reach its bucket: {exc}")

    # 2. resume: an export of this (run, round, site) exists -> nothing to train or spend.
    manifest_key = update_object_key(task.run_id, round_index, site_id) + MANIFEST_SUFFIX
    try:
        existing = _existing_export(client, bucket, manifest_key)
    except STORE_ERRORS as exc:
        return _abstain(out, meta, f"site {site_id}: {_store_failure(bucket, exc)}")
    except ManifestError as exc:
        return _abstain(
            out,
            meta,
            f"site {site_id}: s3://{bucket}/{manifest_key} exists but is not a valid manifest "
            f"({exc}); the key is taken, not training",
        )
    if existing is not None:
        m = existing.manifest
        return _write(
            out,
            {
                **meta,
                "status": "resumed",
                "reason": f"update already exported at s3://{bucket}/{manifest_key}; not retrained",
                "dp": m.dp,
                "epsilon": m.epsilon,
                "epsilon_pld": m.epsilon_pld,
                "delta": m.delta,
            },
            None,
        )

    # 3. validation
    failure = _validation_failure(validation)
    if failure is not None:
        return _abstain(out, meta, f"site {site_id}: {failure}")

    # 4. DP off only where the policy allows it
    if not dp_enabled and not policy.dp.allow_dp_off:
        raise DpPolicyError(
            f"site {site_id}: dp_enabled is false but policy {policy.id} has "
            "dp.allow_dp_off: false; train with DP or change the policy"
        )

    # 5. data
    try:
        check_own_bucket(site, data.train_uri)
        frame = read_site_table(data.train_uri, lambda: client, site_id)
        x_raw, y = frame_to_arrays(data.contract, frame, site_id, min_rows=1)
    except DataError as exc:
        return _abstain(out, meta, str(exc))
    n = int(x_raw.shape[0])
    meta["num_examples"] = n
    config = DpSgdConfig(
        batch_size=batch_size,
        local_epochs=local_epochs,
        learning_rate=learning_rate,
        noise_multiplier=noise_multiplier,
        l2_norm_clip=l2_norm_clip,
        dp_enabled=dp_enabled,
    )
    try:
        config.check(n)
    except TrainingError as exc:
        return _abstain(out, meta, f"site {site_id}: {exc}")
    x = fit_scaler(data.contract, x_raw).transform(x_raw)

    if dp_enabled:
        event = dp_sgd_event(n, batch_size, local_epochs, noise_multiplier)
    else:
        planned = dp_sgd_event(n, batch_size, local_epochs, 1.0)  # steps and q, no noise
        event = DpSgdEvent(planned.sampling_rate, 0.0, planned.steps, non_private=True)
    delta = policy.dp.delta
    env_seed = os.environ.get(NOISE_SEED_ENV)
    base_noise_seed = (
        noise_seed if noise_seed is not None else (int(env_seed) if env_seed else None)
    )

    # 6. budget, before anything is trained or charged
    store = LedgerStore(client, bucket, site_id, sse=sse_for_policy(policy, site_id))
    try:
        entries = store.entries()
    except (LedgerError, *STORE_ERRORS) as exc:
        return _abstain(
            out, meta, f"site {site_id}: privacy ledger unreadable, not training: {exc}"
        )
    decision = None
    if dp_enabled:
        decision = check_budget(
            entries,
            event,
            site_id=site_id,
            run_id=task.run_id,
            round_=round_index,
            epsilon_per_round=policy.dp.epsilon_per_round,
            lifetime_epsilon=policy.dp.lifetime_epsilon,
            delta=delta,
            policy_id=policy.id,
        )
        if not decision.allowed:
            meta["ledger"] = {**ledger_summary(entries, delta), "refused": decision.reason}
            return _abstain(out, meta, decision.reason or "budget exceeded")

    # 7. charge, re-check, train
    created = (now or dt.datetime.now(dt.UTC)).isoformat()

    def make_entry(attempt: int) -> LedgerEntry:
        return new_entry(
            run_id=task.run_id,
            round_=round_index,
            site_id=site_id,
            attempt=attempt,
            event=event,
            delta=delta,
            batch_size=batch_size,
            epochs=local_epochs,
            num_examples=n,
            l2_norm_clip=l2_norm_clip if dp_enabled else None,
            created_at=created,
        )

    try:
        entry = store.charge(task.run_id, round_index, make_entry)
        entries = store.entries()
    except (LedgerError, *STORE_ERRORS) as exc:
        # The charge may or may not have landed; either way nothing is trained.
        return _abstain(out, meta, f"site {site_id}: could not charge the privacy ledger: {exc}")
    summary = ledger_summary(entries, delta)
    lifetime = summary["lifetime_epsilon"]
    if dp_enabled and (lifetime is None or lifetime > policy.dp.lifetime_epsilon):
        reason = (
            f"site {site_id}: after charging attempt {entry.attempt} the ledger totals epsilon "
            f"{lifetime} > {policy.id} dp.lifetime_epsilon {policy.dp.lifetime_epsilon:g} "
            "(a concurrent charge landed); not trained, the charge stays"
        )
        meta["ledger"] = {**summary, "entry_key": entry.key, "attempt": entry.attempt}
        return _abstain(out, meta, reason)

    shuffle_seed = _derive_seed(seed, site_id, task.run_id, round_index)
    run_noise_seed = (
        None
        if base_noise_seed is None
        else _derive_seed(
            base_noise_seed, "noise", site_id, task.run_id, round_index, entry.attempt
        )
    )
    result = train_dp_sgd(
        model_name,
        gm.tensors,
        x,
        y,
        data.contract.num_classes,
        config,
        shuffle_seed=shuffle_seed,
        noise_seed=run_noise_seed,
    )
    if result.steps != event.steps:  # the accountant and the training must agree
        raise TrainingError(
            f"site {site_id}: trained {result.steps} steps, accounted {event.steps}"
        )
    meta.update(
        status="trained",
        reason=(
            None
            if dp_enabled
            else f"DP off: allowed by policy {policy.id} dp.allow_dp_off; epsilon is infinite"
        ),
        dp={
            "enabled": dp_enabled,
            "noise_multiplier": noise_multiplier if dp_enabled else None,
            "l2_norm_clip": l2_norm_clip if dp_enabled else None,
            "batch_size": batch_size,
            "local_epochs": local_epochs,
            "learning_rate": learning_rate,
            "sampling_rate": event.sampling_rate if dp_enabled else None,
            "steps": result.steps,
            "sampling": SAMPLING,
            "accounting": ACCOUNTING,
            "noise": result.noise_mode if dp_enabled else None,
        },
        epsilon=entry.epsilon if dp_enabled else None,
        epsilon_pld=entry.epsilon_pld if dp_enabled else None,
        final_loss=result.final_loss,
        ledger={
            **summary,
            "entry_key": entry.key,
            "attempt": entry.attempt,
            "round_epsilon": decision.round_epsilon if decision else None,
            "epsilon_per_round": policy.dp.epsilon_per_round,
            "lifetime_budget": policy.dp.lifetime_epsilon,
        },
    )
    return _write(out, meta, result.tensors)
