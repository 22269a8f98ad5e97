"""Collect a round's updates: residency gate, fetch, verify; every outcome recorded (I/O edge).

Each site ends in exactly one of `verified`, `abstained` (its export said so) or `rejected`
(with the reason). Nothing is fetched from a site whose policy does not let this coordinator
read its `dp_update`. Sites are fetched and verified on a few threads (network-bound); the
outcome does not depend on their timing (merged in site order).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from components.aggregation.fetch import fetch_update
from components.aggregation.verify import (
    ModelSpec,
    UpdateRejected,
    VerifiedUpdate,
    check_ref,
    encrypted_size_limit,
    residency_rule,
    verify_encrypted_update,
    verify_update,
)
from components.audit.events import AdmissionMissing, admission_key, check_admission, site_chain
from components.audit.records import AuditFormatError, Record, signature_ok
from components.audit.store import chain_prefix
from components.common.artifact_files import REF_FILE, read_json
from components.common.create_only import ObjectTooLargeError, read_or_none
from components.common.manifest import update_object_key
from components.common.secrets import MissingSecretError
from components.domain.canonical import policy_digest
from components.domain.models import Policy, Site

if TYPE_CHECKING:
    from minio import Minio

MAX_AUDIT_BYTES = 1 << 20  # an admission or export audit record is a few KiB


@dataclass
class Collected:
    """The outcome of every site of the round (site ids sorted within each part)."""

    verified: dict[str, VerifiedUpdate] = field(default_factory=dict)
    abstained: dict[str, str] = field(default_factory=dict)
    rejected: dict[str, str] = field(default_factory=dict)
    residency: dict[str, str] = field(default_factory=dict)  # site -> rule that allowed reading
    # site -> hashes of the site's audit records this round consumed (admission, export)
    consumed: dict[str, list[str]] = field(default_factory=dict)


def read_ref(folder: str) -> dict[str, Any]:
    """The export's `ref.json` from its artifact folder (raises UpdateRejected-ready errors)."""
    path = Path(folder) / REF_FILE
    body = read_json(folder, REF_FILE)
    if not isinstance(body, dict):
        raise ValueError(f"{path}: not a JSON object")
    return body


def _one(
    site_id: str,
    folder: str,
    *,
    site: Site,
    policy: Policy,
    coordinator: Site,
    run_id: str,
    round_index: int,
    spec: ModelSpec,
    max_bytes: int,
    global_version: int,
    client_for: Callable[[Site], Minio],
    rule: str | None = None,
    protection: str = "none",
    context_id: str | None = None,
) -> tuple[str, str] | tuple[VerifiedUpdate, str, list[str]]:
    """("abstained", reason) or (the verified update, the residency rule, the hashes of the
    site's audit records it rests on); else UpdateRejected."""
    try:
        ref = read_ref(folder)
    except (OSError, ValueError) as exc:
        raise UpdateRejected(site_id, f"{REF_FILE} unreadable: {exc}") from exc
    status = ref.get("status")
    if status == "abstained":
        return "abstained", str(ref.get("reason") or "abstained (no reason given)")
    if status != "exported":
        raise UpdateRejected(site_id, f"{REF_FILE} status {status!r} (expected exported)")
    if policy.id != site.policy:
        raise UpdateRejected(
            site_id, f"policy {policy.id!r} given, but the site spec names policy {site.policy!r}"
        )
    asked = policy.aggregation.protection
    if asked != protection or protection not in ("none", "he"):
        why = (
            "so its update may not be read alone"
            if protection == "none" or asked == protection
            else f"but this round aggregates under {protection}: set it to {protection}"
        )
        raise UpdateRejected(
            site_id,
            f"protection: policy {policy.id} asks aggregation.protection {asked}, {why}; not read",
        )
    residency = residency_rule(site, policy, coordinator)
    bucket = site.object_store.bucket
    key = update_object_key(run_id, round_index, site_id)
    check_ref(ref, site_id=site_id, bucket=bucket, key=key)
    try:
        client = client_for(site)
    except MissingSecretError as exc:
        raise UpdateRejected(site_id, f"cannot read the site's bucket: {exc}") from exc
    digest = policy_digest(policy)
    expected: dict[str, Any] = {  # what every update is checked against, plain or encrypted
        "site_id": site_id,
        "public_key_pem": site.signing.public_key if site.signing else "",
        "run_id": run_id,
        "round_index": round_index,
        "spec": spec,
        "policy_digest": digest,
        "epsilon_per_round": policy.dp.epsilon_per_round,
        "allow_dp_off": policy.dp.allow_dp_off,
        "global_version": global_version,
    }
    if protection == "he":
        verified = _encrypted(client, bucket, key, context_id, expected)
    else:
        raw = fetch_update(client, site_id=site_id, bucket=bucket, key=key, max_bytes=max_bytes)
        verified = verify_update(
            npz_bytes=raw.npz_bytes,
            manifest_bytes=raw.manifest_bytes,
            max_bytes=max_bytes,
            **expected,
        )
    key = admission_key(run_id, site_id, digest)
    try:
        admission = check_admission(
            _get_or_none(client, bucket, key, site_id),
            site_id=site_id,
            public_pem=expected["public_key_pem"],
            run_id=run_id,
            policy_digest=digest,
            rule=rule,
            key=f"s3://{bucket}/{key}",
        )
    except AdmissionMissing as exc:
        raise UpdateRejected(site_id, str(exc)) from None
    consumed = [admission.hash]
    export_hash = _export_record(client, site, ref, run_id, round_index, verified)
    if export_hash is not None:
        consumed.append(export_hash)
    return verified, residency, consumed


def _encrypted(
    client: Minio, bucket: str, key: str, context_id: str | None, expected: dict[str, Any]
) -> VerifiedUpdate:
    """Fetch and verify `<key>.ckks` + its manifest (protection he)."""
    from components.he.wire import CIPHERTEXT_SUFFIX

    if not context_id:
        raise ValueError("protection he: collect_updates needs the federation's context_id")
    limit = encrypted_size_limit(expected["spec"])
    raw = fetch_update(
        client,
        site_id=expected["site_id"],
        bucket=bucket,
        key=key,
        max_bytes=limit,
        suffix=CIPHERTEXT_SUFFIX,
    )
    return verify_encrypted_update(
        bundle_bytes=raw.npz_bytes,
        manifest_bytes=raw.manifest_bytes,
        context_id=context_id,
        **expected,
    )


def _signed_references(
    site_id: str,
    folder: str,
    site: Site,
    policy: Policy,
    run_id: str,
    client_for: Callable[[Site], Minio],
) -> list[str]:
    """Hashes of the site's admission and export records of a rejected update that are signed
    by the site (the coordinator references every export it read, accepted or not); records
    that cannot be read or do not verify are left out (the rejection reason says why)."""
    try:
        ref = read_ref(folder)
        client = client_for(site)
        bucket = site.object_store.bucket
        public = site.signing.public_key if site.signing else ""
        keys = [admission_key(run_id, site_id, policy_digest(policy))]
        pointer = ref.get("audit")
        if isinstance(pointer, dict) and str(pointer.get("key", "")).startswith(
            chain_prefix(run_id, site_chain(site_id)) + "records/"
        ):
            keys.append(str(pointer["key"]))
        hashes = []
        for key in keys:
            raw = _get_or_none(client, bucket, key, site_id)
            if raw is None:
                continue
            record = Record.from_json(raw)
            if record.kind in ("admission", "export") and signature_ok(
                record.payload(), record.signature, public
            ):
                hashes.append(record.hash)
        return hashes
    except Exception:  # a rejected site's store may be unreachable or hostile: refs are best effort
        return []


def _get_or_none(client: Minio, bucket: str, key: str, site_id: str) -> bytes | None:
    """An audit record of the site; UpdateRejected naming it when it is oversized."""
    try:
        return read_or_none(client, bucket, key, MAX_AUDIT_BYTES)
    except ObjectTooLargeError as exc:
        raise UpdateRejected(site_id, f"audit record: {exc}") from None


def _export_record(
    client: Minio,
    site: Site,
    ref: dict[str, Any],
    run_id: str,
    round_index: int,
    verified: VerifiedUpdate,
) -> str | None:
    """The hash of the site's `export` audit record that `ref.json` points to, after checking
    it (signed by the site, in its chain for this run, for this round and this update);
    None when the ref names none. UpdateRejected when it names one that does not hold."""
    pointer = ref.get("audit")
    if not pointer:
        return None
    site_id = site.id
    prefix = chain_prefix(run_id, site_chain(site_id))
    key = str(pointer.get("key") or "") if isinstance(pointer, dict) else ""
    if not key.startswith(prefix + "records/"):
        raise UpdateRejected(site_id, f"ref.json audit key {key!r} is outside the site's chain")
    raw = _get_or_none(client, site.object_store.bucket, key, site_id)
    try:
        record = Record.from_json(raw or b"")
    except AuditFormatError as exc:
        raise UpdateRejected(site_id, f"export audit record {key} unreadable: {exc}") from None
    public = site.signing.public_key if site.signing else ""
    body = record.body
    if (
        not signature_ok(record.payload(), record.signature, public)
        or record.kind != "export"
        or body.get("round") != round_index
        or body.get("content_sha256") != verified.manifest.content_sha256
    ):
        raise UpdateRejected(
            site_id, f"export audit record {key} does not match this update (or is not signed)"
        )
    return record.hash


def collect_updates(
    updates: Mapping[str, str],
    *,
    sites: Mapping[str, Site],
    policies: Mapping[str, Policy],
    coordinator: Site,
    run_id: str,
    round_index: int,
    spec: ModelSpec,
    max_bytes: int,
    client_for: Callable[[Site], Minio],
    global_version: int,
    max_workers: int = 8,
    rule: str | None = None,
    protection: str = "none",
    context_id: str | None = None,
) -> Collected:
    """Gate, fetch and verify the update of every site in `updates` ({site_id: ref folder}).

    global_version: the version the round starts from (stale deltas are refused).
    rule: the rule this round applies; a site's update is refused unless the site admitted
    the run (its signed admission record: an accept, for this run, policy and rule).
    max_workers: sites fetched and verified at once (threads; results merged in site order).
    protection: the round's update protection; "he" reads each site's `<key>.ckks` and checks
    it against `context_id` (the coordinator's public context), a site whose policy asks
    another protection is rejected.
    A site missing from `sites` or `policies` is a configuration error (ValueError), not a
    rejection: the pipeline was compiled from the same files.
    """
    unknown = sorted(set(updates) - set(sites)) + sorted(set(updates) - set(policies))
    if unknown:
        raise ValueError(
            f"updates from site(s) {sorted(set(unknown))} that sites_json/policies_json lack"
        )

    def one(
        site_id: str,
    ) -> tuple[str, str] | tuple[VerifiedUpdate, str, list[str]] | UpdateRejected:
        try:
            return _one(
                site_id,
                updates[site_id],
                site=sites[site_id],
                policy=policies[site_id],
                coordinator=coordinator,
                run_id=run_id,
                round_index=round_index,
                spec=spec,
                max_bytes=max_bytes,
                global_version=global_version,
                client_for=client_for,
                rule=rule,
                protection=protection,
                context_id=context_id,
            )
        except UpdateRejected as exc:
            exc.consumed = _signed_references(  # type: ignore[attr-defined]
                site_id, updates[site_id], sites[site_id], policies[site_id], run_id, client_for
            )
            return exc

    order = sorted(updates)
    workers = max(1, min(max_workers, len(order)))
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="fetch") as pool:
        outcomes = list(pool.map(one, order))
    out = Collected()
    for site_id, outcome in zip(order, outcomes, strict=True):
        if isinstance(outcome, UpdateRejected):
            out.rejected[site_id] = outcome.reason
            out.consumed[site_id] = getattr(outcome, "consumed", [])
        elif isinstance(outcome[0], VerifiedUpdate):
            verified, residency, consumed = outcome  # type: ignore[misc]
            out.verified[site_id], out.residency[site_id] = verified, residency
            out.consumed[site_id] = consumed
        else:
            out.abstained[site_id] = outcome[1]
    return out
