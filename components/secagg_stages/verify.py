"""The coordinator's checks of a masked update before it is summed (I/O-free): the site's
residency rule for `masked_update`, the signed manifest over the masked bytes (site, run,
round, content hash, the round's starting version) and its declared privacy against the
site's policy. What the coordinator cannot check any more is the update itself."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from components.common.manifest import ManifestError, SignedManifest, verify_manifest
from components.domain.canonical import policy_digest, sha256_hex
from components.domain.models import Policy, Site
from components.secagg.errors import SecAggError


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
