"""`export` executor: the signed DP update, create-only, into the site's own bucket.

Reads the `local_model` folder written by train:
* `status: "abstained"` -> `ref.json` says abstained (reason carried over), nothing written.
* `status: "resumed"` -> the update of this (run, round, site) is already in the bucket: it is
  verified (signature with the site's public key, hash, run/round/site) and referenced, not
  rewritten.
* `status: "trained"` -> delta = local - global, manifest signed with the site's Ed25519 key
  (`SIGNING_KEY` secret; checked against the site spec's public key before anything is
  written), published by `components.export.store.publish_update`. An existing update for
  the same (run, round, site) is refused (`ExportExistsError`) and left intact.

Run-time residency check: the destination is the site's own bucket from its own spec
(`components.export.update.check_destination`); the policy's `encryption.at_rest` decides
the SSE request, `retention.object_lock` / `retention.days` the object-lock retention;
`encryption.in_transit: tls` refuses a site spec with `object_store.secure: false`; a policy
asking `aggregation.protection: secagg` refuses to publish the update in the clear (the
compiler refuses such a pipeline too; this is the site's own check).

`aggregation.protection: he`: the update is published encrypted instead, `<key>.ckks` (a
ciphertext bundle of [w·Δ, w] under the federation's CKKS context, `components.he`) beside
the same signed manifest (its hash covers the bundle; `extra` names the protection, the
context id and how w was chosen); the global model it is a delta against is decrypted with
the site's secret context from its own bucket. w is the site's example count (capped by its
declared maximum) when its policy reveals counts, else 1: the plain FedAvg weights.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from pathlib import Path
from typing import Any

from components.common.artifact_files import META_FILE, MODEL_FILE, REF_FILE, write_json
from components.common.create_only import sse_for_policy
from components.common.manifest import (
    ManifestError,
    SignedManifest,
    sign_manifest,
    verify_manifest,
)
from components.common.secrets import site_secret
from components.common.site_task import SiteTask
from components.common.tensors import load_tensors
from components.datasets.io import ClientFactory, site_client_factory
from components.domain.canonical import sha256_hex
from components.export.store import describe, publish_update
from components.export.update import (
    Destination,
    DestinationError,
    ExportError,
    build_manifest,
    check_destination,
    encode_delta,
    model_delta,
)
from components.he.global_model import site_global_model
from components.he.wire import CIPHERTEXT_SUFFIX


def _write_ref(folder: str, ref: dict[str, Any]) -> dict[str, Any]:
    write_json(folder, REF_FILE, ref)
    return ref


def _read(client: Any, bucket: str, key: str) -> bytes:
    response = client.get_object(bucket, key)
    try:
        return response.read()
    finally:
        response.close()
        response.release_conn()


def run(
    task: SiteTask,
    *,
    local_model: str,
    global_model: str,
    update: str,
    client_factory: ClientFactory | None = None,
    now: dt.datetime | None = None,
    audit: bool = False,
) -> dict[str, Any]:
    """Export (or reference, or abstain) and write `<update>/ref.json`; returns its content.

    `audit` (the component sets it): the export is appended to the site's audit chain and
    `ref.json` points to that record (`audit`: key, hash), which the coordinator checks.

    `client_factory` (tests) replaces the minio client built from the site spec + secrets;
    `now` fixes the retention start.
    """
    site_id = task.site_id
    _refuse_clear_export(task)
    dest = _destination(task)
    ref = _empty_ref(task, dest)
    train_meta = _train_meta(task, Path(local_model))
    status = train_meta.get("status")
    if status == "abstained":
        return _write_ref(
            update, {**ref, "status": "abstained", "reason": train_meta.get("reason")}
        )
    client = (client_factory or site_client_factory(task.site))()
    if status == "resumed":
        resumed = {**ref, **_verify_resumed(task, client, dest)}
        if audit:
            signed = SignedManifest.from_json(json.dumps(resumed["manifest"]).encode())
            resumed["audit"] = _audit_export(task, client, dest, signed)
        return _write_ref(update, resumed)
    if status != "trained":
        raise ExportError(f"site {site_id}: local model status {status!r} is not exportable")
    payload, signed = _sign_update(task, train_meta, Path(local_model), global_model, client)
    published = publish_update(
        client,
        dest,
        payload=payload,
        signed=signed,
        public_key_pem=task.site.signing.public_key,
        site_id=site_id,
        run_id=task.run_id,
        round_=task.round_index,
        sse=sse_for_policy(task.policy, site_id),
        retention_days=task.policy.retention.days if task.policy.retention.object_lock else None,
        policy_id=task.policy.id,
        now=now,
    )
    out = {
        **ref,
        "status": "exported",
        "manifest": json.loads(signed.to_json()),
        "stored": describe(published),
    }
    if audit:
        out["audit"] = _audit_export(task, client, dest, signed)
    return _write_ref(update, out)


def site_manifest(
    task: SiteTask,
    site_id: str,
    round_: int,
    payload: bytes,
    tensor_names: list[str],
    train_meta: dict[str, Any],
    global_version: int,
    protection_fields: dict[str, Any],
) -> dict[str, Any]:
    """The unsigned manifest of a site's update (clear, encrypted or masked): the policy's
    disclosure settings, the global version it builds on, and `protection_fields`."""
    return build_manifest(
        run_id=task.run_id,
        round_=round_,
        site_id=site_id,
        payload=payload,
        tensor_names=tensor_names,
        train_meta=train_meta,
        reveal_num_examples=task.policy.export.reveal_num_examples,
        epsilon_per_round=task.policy.dp.epsilon_per_round,
        policy_digest=task.policy_digest,
        extra={
            "global_version": global_version,
            "model_name": train_meta.get("model_name"),
            "dataset": train_meta.get("dataset"),
            **protection_fields,
        },
    )


def _audit_export(task: SiteTask, client: Any, dest: Destination, signed: SignedManifest) -> dict:
    """Append the export to the site's chain; the pointer the coordinator checks and
    references (`ref.json` `audit`: the record's key and hash)."""
    from components.audit.events import site_chain, site_task_log
    from components.audit.store import record_key

    m = signed.manifest
    record = site_task_log(task, client).append(
        "export",
        {
            "round": task.round_index,
            "content_sha256": m.content_sha256,
            "key": dest.key,
            "epsilon": m.epsilon,
            "policy_digest": m.policy_digest,
            "summary": f"signed update sha256 {m.content_sha256[:12]} written to "
            f"s3://{dest.bucket}/{dest.key}",
        },
    )
    key = record_key(task.run_id, site_chain(task.site_id), record.seq)
    return {"key": key, "hash": record.hash}


def _refuse_clear_export(task: SiteTask) -> None:
    """ExportError when the site's policy lets the coordinator see only a sum or ciphertexts:
    this export would publish the update itself."""
    protection = task.policy.aggregation.protection
    if task.policy.dp.mode == "distributed":
        raise ExportError(
            f"site {task.site_id}: policy {task.policy.id} asks dp.mode distributed: the update "
            "carries only this site's share of the noise and may leave the site only masked "
            "(aggregation.protection secagg); refusing to publish it in the clear or encrypted"
        )
    if protection not in ("none", "he"):
        raise ExportError(
            f"site {task.site_id}: policy {task.policy.id} asks aggregation.protection "
            f"{protection} (the coordinator may not see this site's update alone), but this "
            "export publishes the update in the clear; refusing (the protected export stages "
            "are not built yet)"
        )


def _destination(task: SiteTask) -> Destination:
    """The update's keys in the site's own bucket; DestinationError when the policy requires
    TLS and the site spec turns it off."""
    dest = check_destination(task.site, task.run_id, task.round_index)
    if task.policy.aggregation.protection == "he":  # ciphertexts, beside the same manifest
        dest = dataclasses.replace(dest, tensors_key=dest.key + CIPHERTEXT_SUFFIX)
    if task.policy.encryption.in_transit == "tls" and not task.site.object_store.secure:
        raise DestinationError(
            f"site {task.site_id}: policy {task.policy.id} encryption.in_transit is tls but the "
            "site's object_store.secure is false"
        )
    return dest


def _empty_ref(task: SiteTask, dest: Destination) -> dict[str, Any]:
    return {
        "status": None,
        "site_id": task.site_id,
        "bucket": dest.bucket,
        "key": dest.key,
        "tensors_key": dest.tensors_key,
        "manifest_key": dest.manifest_key,
        "manifest": None,
        "reason": None,
    }


def _train_meta(task: SiteTask, local_model: Path) -> dict[str, Any]:
    """train's meta.json; ExportError when unreadable or written for another site/run/round."""
    meta_path = local_model / META_FILE
    try:
        train_meta = json.loads(meta_path.read_text())
    except (OSError, ValueError) as exc:
        raise ExportError(
            f"site {task.site_id}: local model meta {meta_path} unreadable: {exc}"
        ) from None
    identity = (train_meta.get("site_id"), train_meta.get("run_id"), train_meta.get("round"))
    expected = (task.site_id, task.run_id, task.round_index)
    if identity != expected:
        raise ExportError(
            f"site {task.site_id}: local model was trained for site/run/round {identity}, this "
            f"export is for {expected}; refusing to publish it under this key"
        )
    return train_meta


def _verify(task: SiteTask, signed: SignedManifest, payload: bytes) -> None:
    verify_manifest(
        signed,
        public_key_pem=task.site.signing.public_key,
        expected_site_id=task.site_id,
        expected_run_id=task.run_id,
        expected_round=task.round_index,
        content_sha256=sha256_hex(payload),
    )


def _verify_resumed(task: SiteTask, client: Any, dest: Destination) -> dict[str, Any]:
    """The ref fields of an update exported earlier, after verifying it as aggregation will."""
    payload = _read(client, dest.bucket, dest.tensors_key)
    signed = SignedManifest.from_json(_read(client, dest.bucket, dest.manifest_key))
    _verify(task, signed, payload)
    return {
        "status": "exported",
        "manifest": json.loads(signed.to_json()),
        "reason": "resumed: the update exported earlier was verified and is referenced",
        "resumed": True,
    }


def he_weight(task: SiteTask, train_meta: dict[str, Any]) -> tuple[float, str]:
    """(w, how) of an encrypted update: the plain FedAvg weight. The example count (capped
    by the site's declared maximum, as the coordinator caps plain claims) when the policy
    reveals counts, else 1 (plain FedAvg is uniform when counts are hidden)."""
    count = train_meta.get("num_examples")
    if not task.policy.export.reveal_num_examples or not count:
        return 1.0, "uniform"
    declared = task.site.data.num_examples if task.site.data else None
    cap = declared.max if declared is not None else task.policy.aggregation.max_num_examples
    return float(min(int(count), cap) if cap is not None else int(count)), "num_examples"


def _encrypt(
    task: SiteTask, train_meta: dict[str, Any], delta: dict[str, Any], client: Any
) -> tuple[bytes, dict[str, Any]]:
    """(ciphertext bundle, manifest extras) of the weighted delta (protection he)."""
    from components.he.ckks import encrypt_weighted
    from components.he.global_model import flatten
    from components.he.keys import site_context
    from components.he.wire import pack_bundle

    loaded = site_context(task.site, client)
    weight, how = he_weight(task, train_meta)
    bundle = pack_bundle(
        encrypt_weighted(loaded.context, flatten(delta), weight), loaded.context_id
    )
    return bundle, {"protection": "he", "he_context": loaded.context_id, "he_weight": how}


def _sign_update(
    task: SiteTask,
    train_meta: dict[str, Any],
    local_model: Path,
    global_model: str,
    client: Any = None,
) -> tuple[bytes, SignedManifest]:
    """(payload, signed manifest) of the delta local - global, checked before anything is
    written: the start version, the readable model, and the secret key against the spec.
    With protection he the payload is the encrypted bundle (`client`: the site's bucket,
    where its secret context is)."""
    site_id = task.site_id
    gm = site_global_model(global_model, task.site, lambda: client)
    if train_meta.get("global_version") != gm.version:
        raise ExportError(
            f"site {site_id}: local model started from global version "
            f"{train_meta.get('global_version')}, the export's global model is version "
            f"{gm.version}; the delta would be wrong"
        )
    model_file = local_model / MODEL_FILE
    try:
        local = load_tensors(model_file.read_bytes())
    except OSError as exc:
        raise ExportError(f"site {site_id}: trained model {model_file} unreadable: {exc}") from None
    delta = model_delta(local, gm.tensors, site_id)
    payload, protected = encode_delta(delta), {}
    if task.policy.aggregation.protection == "he":
        payload, protected = _encrypt(task, train_meta, delta, client)
    manifest = site_manifest(
        task, site_id, task.round_index, payload, list(delta), train_meta, gm.version, protected
    )
    signed = sign_manifest(manifest, site_secret(site_id, "SIGNING_KEY"))
    try:
        _verify(task, signed, payload)
    except ManifestError as exc:
        raise ExportError(
            f"site {site_id}: the SIGNING_KEY secret does not match the site spec's "
            f"signing.public_key ({exc}); nothing was written"
        ) from None
    return payload, signed
