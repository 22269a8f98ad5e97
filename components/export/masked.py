"""`export` under `aggregation.protection: secagg`: the masked, quantized update instead of
the clear one (the site's SecAgg+ masking step).

Phases: destination (the site's own bucket, TLS as the policy says) → train's meta (abstained:
nothing masked, the site drops out of the round and the coordinator recovers its pairwise
masks from its neighbours' key shares) → delta = local - global, flattened in sorted tensor
order → clip to the compiled L2 norm bound (the coordinator cannot bound what it cannot see),
times the site's FedAvg weight, the weight appended, quantized to fixed point
(`components.secagg.encode`; bits such that the sum over every compiled site cannot overflow
mod 2^w) → masked with the self mask and the pairwise masks of the round's roster, using the
shares relayed to this site (`exchange.site_mask`: the masked words go create-only to
`secagg/<run>/round-NNNN/<site>/masked.bin` in the site's bucket, the round state to
`secagg-private/`) → a manifest over the masked bytes, signed with the site's Ed25519 key,
carrying the DP figures as the clear export's would (`ref.json`, status `masked`), and, as
the clear export does, an `export` record in the site's audit chain (`ref.json` `audit`).
The clear update is never written.

Distributed DP (`dp.mode: distributed`, train's meta says so): instead of the weighted fixed
point, the site masks `components.privacy.skellam.encode_distributed`'s words: its delta clipped
to `DISTRIBUTED_DELTA_CLIP`, scaled, rounded, plus its Skellam share mu/h (mu from the same
`round_plan` train charged, checked against train's meta), and a count slot of 1. The noise
comes from the OS CSPRNG, or, in simulation (`FEDPIPE_DP_NOISE_SEED`), from a seeded source.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np

from components.common.artifact_files import MODEL_FILE
from components.common.create_only import sse_for_policy
from components.common.global_model import read_global_model
from components.common.manifest import ManifestError, sign_manifest, verify_manifest
from components.common.secrets import site_secret
from components.common.site_task import SiteTask
from components.common.tensors import load_tensors
from components.datasets.io import ClientFactory, site_client_factory
from components.domain.canonical import sha256_hex
from components.domain.models import Site
from components.export.executor import (
    _audit_export,
    _destination,
    _train_meta,
    _write_ref,
    site_manifest,
)
from components.export.update import ExportError, model_delta
from components.secagg import exchange
from components.secagg.encode import encode_weighted
from components.secagg.settings import SecAggSettings, flatten
from components.secagg_stages.common import private_key, public_key, site_bucket, sites_of

log = logging.getLogger(__name__)
MASKED_FILE = "masked.bin"


def run_masked(
    task: SiteTask,
    *,
    local_model: str,
    global_model: str,
    relay: str,
    secagg_json: str,
    coordinator_json: str,
    sites_json: str,
    update: str,
    client_factory: ClientFactory | None = None,
    audit: bool = False,
) -> dict[str, Any]:
    """Mask and publish (or abstain); writes `<update>/ref.json` and returns it."""
    site_id, r = task.site_id, task.round_index
    settings = SecAggSettings.from_json(secagg_json)
    if task.policy.aggregation.protection != "secagg":
        raise ExportError(
            f"site {site_id}: the pipeline masks updates (secure aggregation) but policy "
            f"{task.policy.id} asks aggregation.protection {task.policy.aggregation.protection}"
        )
    dest = _destination(task)
    key = exchange.site_key(task.run_id, r, site_id, MASKED_FILE)
    ref: dict[str, Any] = {
        "status": None,
        "site_id": site_id,
        "bucket": dest.bucket,
        "key": key,
        "manifest": None,
        "reason": None,
        "protection": "secagg",
    }
    train_meta = _train_meta(task, Path(local_model))
    status = train_meta.get("status")
    if status != "trained":
        reason = train_meta.get("reason") or f"local model status {status!r}"
        if status == "resumed":
            reason = (
                "the round was resumed: a masked update cannot be rebuilt without retraining; "
                "the site drops out of this round"
            )
        return _write_ref(update, {**ref, "status": "abstained", "reason": reason})
    coordinator_public = public_key(Site.parse_raw(coordinator_json))
    roster = exchange.round_roster(
        exchange.FolderBucket(Path(relay)), task.run_id, r, coordinator_public
    )
    if site_id in roster.excluded:  # it shared nothing: no one masks with it, it masks nothing
        reason = f"excluded from round {r} at relay (it shared nothing after the roster)"
        return _write_ref(update, {**ref, "status": "abstained", "reason": reason})
    gm = read_global_model(global_model)
    if train_meta.get("global_version") != gm.version:
        raise ExportError(
            f"site {site_id}: local model started from global version "
            f"{train_meta.get('global_version')}, the export's global model is version "
            f"{gm.version}; the delta would be wrong"
        )
    model_file = Path(local_model) / MODEL_FILE
    try:
        local = load_tensors(model_file.read_bytes())
    except OSError as exc:
        raise ExportError(f"site {site_id}: trained model {model_file} unreadable: {exc}") from None
    delta = model_delta(local, gm.tensors, site_id)
    vector = flatten(delta)
    norm = float(np.linalg.norm(vector))
    if norm > settings.norm_bound:  # stays in the site's log: the norm is not published
        log.info("site %s: update norm %.4g clipped to %.4g", site_id, norm, settings.norm_bound)
    words = _distributed_words(task, train_meta, vector, settings)
    if words is None:
        quantizer = settings.quantizer()
        weight = settings.weight(train_meta.get("num_examples"), site_id)
        words = encode_weighted(vector, weight, settings.norm_bound, quantizer)

    client = (client_factory or site_client_factory(task.site))()
    store = site_bucket(task.site, client, sse_for_policy(task.policy, site_id))
    private_key(task.site)  # SIGNING_KEY must match the spec before anything is written
    sites = sites_of(sites_json)
    peers = {sid: public_key(s) for sid, s in sites.items()}
    exchange.site_mask(
        store,
        exchange.FolderBucket(Path(relay)),
        task.run_id,
        r,
        words,
        settings.modulus_bits,
        coordinator_public,
        peers,
    )
    payload = store.get(task.run_id, r, MASKED_FILE)
    manifest = site_manifest(
        task, site_id, r, payload, list(delta), train_meta, gm.version, {"protection": "secagg"}
    )
    signed = sign_manifest(manifest, site_secret(site_id, "SIGNING_KEY"))
    try:
        verify_manifest(
            signed,
            public_key_pem=task.site.signing.public_key if task.site.signing else "",
            expected_site_id=site_id,
            expected_run_id=task.run_id,
            expected_round=r,
            content_sha256=sha256_hex(payload),
        )
    except ManifestError as exc:  # private_key() checked the pair already
        raise ExportError(f"site {site_id}: signed manifest does not verify: {exc}") from None
    out = {**ref, "status": "masked", "manifest": json.loads(signed.to_json())}
    if audit:  # the export record in the site's chain; the coordinator checks the pointer
        where = SimpleNamespace(bucket=dest.bucket, key=key)
        out["audit"] = _audit_export(task, client, where, signed)  # type: ignore[arg-type]
    return _write_ref(update, out)


def _distributed_words(
    task: SiteTask, train_meta: dict[str, Any], vector: np.ndarray, settings: SecAggSettings
) -> np.ndarray | None:
    """The distributed-DP words (module doc), or None in local mode; ExportError when train's
    meta and the policy disagree on the mode or on mu (the ledger charged train's mu)."""
    import os

    from components.privacy.skellam import (
        MODE_DISTRIBUTED,
        SkellamError,
        encode_distributed,
        os_uniform,
        round_plan,
        seeded_uniform,
    )
    from components.train.executor import NOISE_SEED_ENV, _derive_seed

    dp_meta = train_meta.get("dp") or {}
    policy, site_id = task.policy, task.site_id
    wanted = policy.dp.mode == MODE_DISTRIBUTED
    if (dp_meta.get("mode") == MODE_DISTRIBUTED) != wanted:
        raise ExportError(
            f"site {site_id}: policy {policy.id} asks dp.mode {policy.dp.mode} but the model was "
            f"trained in mode {dp_meta.get('mode', 'local')}; not exporting"
        )
    if not wanted:
        return None
    dp = policy.dp
    plan = round_plan(dp.epsilon_per_round, dp.delta, dp.min_honest_sites or 0, vector.size)
    if dp_meta.get("skellam_mu") != plan.mu:
        raise ExportError(
            f"site {site_id}: train charged Skellam mu {dp_meta.get('skellam_mu')}, the "
            f"policy's round plan is mu {plan.mu}; not exporting"
        )
    seed = os.environ.get(NOISE_SEED_ENV)
    uniform = (
        os_uniform
        if not seed
        else seeded_uniform(
            _derive_seed(int(seed), "skellam", site_id, task.run_id, task.round_index)
        )
    )
    try:
        words, _ = encode_distributed(vector, plan, uniform, settings.modulus_bits)
    except SkellamError as exc:
        raise ExportError(f"site {site_id}: {exc}") from None
    return words
