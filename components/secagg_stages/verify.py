"""The coordinator's checks of a masked update before it is summed (I/O-free): the site's
residency rule for `masked_update`, the signed manifest over the masked bytes (site, run,
round, content hash, the round's starting version), its declared privacy against the
site's policy, and (`site_records`, I/O) the site's signed admission of this run and the
export record its reference points to, as for a clear update. What the coordinator cannot
check any more is the update itself."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from components.common.manifest import ManifestError, SignedManifest, verify_manifest
from components.domain.canonical import policy_digest, sha256_hex
from components.domain.models import Policy, Site
from components.secagg.errors import SecAggError

MAX_RECORD_BYTES = 1 << 20  # an admission or export audit record is a few KiB


def masked_residency_rule(site: Site, policy: Policy, coordinator: Site) -> str:
    """The rule that lets `coordinator` read `site`'s masked update; SecAggError when none."""
    for name, rule in policy.effective_rules("masked_update"):
        if rule.matches(coordinator):
            return name
    raise SecAggError(
        f"site {site.id}: residency: policy {policy.id} lets no masked_update rule match "
        f"coordinator {coordinator.id}; its masked update is not read"
    )


def verify_masked(
    ref: Mapping[str, Any],
    data: bytes,
    *,
    site: Site,
    policy: Policy,
    run_id: str,
    round_index: int,
    global_version: int,
) -> dict[str, Any]:
    """The manifest (as a dict) of a masked update that passes; SecAggError naming why not."""
    where = f"site {site.id} round {round_index}"
    if ref.get("status") != "masked" or ref.get("site_id") != site.id:
        raise SecAggError(f"{where}: export reference is not a masked update of this site")
    try:
        signed = SignedManifest.from_json(json.dumps(ref.get("manifest")).encode())
        manifest = verify_manifest(
            signed,
            public_key_pem=site.signing.public_key if site.signing else "",
            expected_site_id=site.id,
            expected_run_id=run_id,
            expected_round=round_index,
            content_sha256=sha256_hex(data),
        )
    except (ManifestError, ValueError, TypeError, KeyError) as exc:
        raise SecAggError(f"{where}: masked update manifest refused: {exc}") from None
    if manifest.policy_digest != policy_digest(policy):
        raise SecAggError(f"{where}: manifest signed under another policy than {policy.id}")
    if (manifest.extra or {}).get("global_version") != global_version:
        raise SecAggError(
            f"{where}: masked against version {(manifest.extra or {}).get('global_version')}, "
            f"the round starts from version {global_version}"
        )
    if manifest.epsilon is None and not policy.dp.allow_dp_off:
        raise SecAggError(f"{where}: no epsilon declared and policy {policy.id} forbids DP off")
    if manifest.epsilon is not None and manifest.epsilon > policy.dp.epsilon_per_round * (1 + 1e-9):
        raise SecAggError(
            f"{where}: epsilon {manifest.epsilon:g} above policy {policy.id}'s "
            f"epsilon_per_round {policy.dp.epsilon_per_round:g}"
        )
    return {
        "epsilon": manifest.epsilon,
        "epsilon_pld": manifest.epsilon_pld,
        "delta": manifest.delta,
        "dp": manifest.dp,
    }


def site_records(
    client: Any,
    ref: Mapping[str, Any],
    *,
    site: Site,
    policy: Policy,
    run_id: str,
    round_index: int,
    manifest_sha256: str,
    rule: str | None = None,
) -> list[str]:
    """Hashes of the site's audit records a masked update rests on: its admission of this run
    (required, as for a clear update) and the export record `ref.json` points to (when it
    names one). SecAggError naming what is missing or does not match."""
    from components.audit.events import AdmissionMissing, admission_key, check_admission, site_chain
    from components.audit.records import AuditFormatError, Record, signature_ok
    from components.audit.store import chain_prefix
    from components.common.create_only import ObjectTooLargeError, read_or_none

    def read(key: str) -> bytes | None:
        try:
            return read_or_none(client, bucket, key, MAX_RECORD_BYTES)
        except ObjectTooLargeError as exc:
            raise SecAggError(f"site {site.id}: audit record: {exc}") from None

    bucket, digest = site.object_store.bucket, policy_digest(policy)
    public = site.signing.public_key if site.signing else ""
    key = admission_key(run_id, site.id, digest)
    try:
        admission = check_admission(
            read(key),
            site_id=site.id,
            public_pem=public,
            run_id=run_id,
            policy_digest=digest,
            rule=rule,
            key=f"s3://{bucket}/{key}",
        )
    except AdmissionMissing as exc:
        raise SecAggError(f"site {site.id}: {exc}") from None
    hashes = [admission.hash]
    pointer = ref.get("audit")
    if not pointer:
        return hashes
    record_key = str(pointer.get("key") or "") if isinstance(pointer, dict) else ""
    if not record_key.startswith(chain_prefix(run_id, site_chain(site.id)) + "records/"):
        raise SecAggError(f"site {site.id}: audit key {record_key!r} is outside its chain")
    try:
        record = Record.from_json(read(record_key) or b"")
    except AuditFormatError as exc:
        raise SecAggError(f"site {site.id}: export record {record_key} unreadable: {exc}") from None
    body = record.body
    if (
        not signature_ok(record.payload(), record.signature, public)
        or record.kind != "export"
        or body.get("round") != round_index
        or body.get("content_sha256") != manifest_sha256
    ):
        raise SecAggError(
            f"site {site.id}: export record {record_key} does not match this masked update"
        )
    return [*hashes, record.hash]
