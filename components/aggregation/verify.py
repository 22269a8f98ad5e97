"""Verify one site's exported update before it may enter the aggregate (pure, no I/O).

Checks, in order, each refusal raising `UpdateRejected` with the site and a one-line reason:
size limit (before parsing anything), manifest well-formed, Ed25519 signature against the
site's public key, manifest version, site id, run id and round (a replay from another round or
run is refused), content hash of the tensor bytes, manifest field types, policy digest, the
global version the delta was computed against, DP epsilon against the policy, container (a
stored, uncompressed .npz: no zip bomb), tensor names, shapes and dtypes against the global
model, finite values. `residency_rule` is the run-time residency gate (before any read).
"""

from __future__ import annotations

import io
import math
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from components.common.artifact_files import MANIFEST_SUFFIX, TENSORS_SUFFIX
from components.common.manifest import (
    ManifestError,
    SignedManifest,
    UpdateManifest,
    verify_manifest,
)
from components.common.tensors import TensorFormatError, Tensors, load_tensors
from components.domain.canonical import sha256_hex
from components.domain.models import Policy, Site

# name -> shape of every tensor of the global model
ModelSpec = dict[str, tuple[int, ...]]

# Per-file overhead allowance of the .npz container (zip headers + npy header, bytes per tensor).
NPZ_OVERHEAD_PER_TENSOR = 1024
MAX_MANIFEST_BYTES = 1 << 20
# Relative slack on the DP epsilon comparison (floating point noise of the accountants).
EPSILON_RTOL = 1e-9


class UpdateRejected(Exception):
    """An update that must not enter the aggregate; `reason` goes into the round report."""

    def __init__(self, site_id: str, reason: str) -> None:
        super().__init__(f"site {site_id}: update rejected: {reason}")
        self.site_id = site_id
        self.reason = reason


@dataclass(frozen=True)
class VerifiedUpdate:
    """An update that passed every check."""

    site_id: str
    tensors: Tensors  # empty for an encrypted update
    manifest: UpdateManifest
    size_bytes: int
    ciphertext: Any = None  # protection he: the EncryptedUpdate (components.he.ckks)


def model_spec(tensors: Mapping[str, np.ndarray]) -> ModelSpec:
    """name -> shape of the global model's tensors."""
    return {name: tuple(int(d) for d in np.shape(t)) for name, t in tensors.items()}


def size_limit(spec: ModelSpec, *, slack_bytes: int = 64 * 1024) -> int:
    """Largest acceptable update file, bytes: float32 payload + container overhead + slack."""
    payload = sum(4 * math.prod(shape) for shape in spec.values())
    return payload + NPZ_OVERHEAD_PER_TENSOR * len(spec) + slack_bytes


def check_ref(ref: Mapping[str, Any], *, site_id: str, bucket: str, key: str) -> None:
    """The export's ref.json must name this site, its configured bucket and the expected key.

    The coordinator reads from the bucket/key it derives itself; a ref pointing elsewhere is
    refused rather than followed.
    """
    if ref.get("site_id") != site_id:
        raise UpdateRejected(site_id, f"ref.json names site {ref.get('site_id')!r}")
    if ref.get("bucket") != bucket:
        raise UpdateRejected(
            site_id, f"ref.json names bucket {ref.get('bucket')!r}, site spec has {bucket!r}"
        )
    # `key` is the prefix (CONTRACT) or the tensor object itself (`<prefix>.npz`).
    if ref.get("key") not in (key, key + TENSORS_SUFFIX):
        raise UpdateRejected(site_id, f"ref.json names key {ref.get('key')!r}, expected {key!r}")
    manifest_key = ref.get("manifest_key")
    if manifest_key is not None and manifest_key != key + MANIFEST_SUFFIX:
        raise UpdateRejected(
            site_id,
            f"ref.json names manifest_key {manifest_key!r}, expected {key}{MANIFEST_SUFFIX}",
        )


def check_container(site_id: str, npz_bytes: bytes, max_bytes: int) -> None:
    """The .npz must be a plain stored zip (as `dump_tensors` writes it) whose entries unpack
    to at most `max_bytes` in total: no compressed entries, so no zip bomb gets unpacked."""
    try:
        with zipfile.ZipFile(io.BytesIO(npz_bytes)) as archive:
            entries = archive.infolist()
    except (zipfile.BadZipFile, ValueError) as exc:
        raise UpdateRejected(site_id, f"not a valid tensor file: {exc}") from exc
    compressed = [e.filename for e in entries if e.compress_type != zipfile.ZIP_STORED]
    if compressed:
        raise UpdateRejected(site_id, f"compressed entries {compressed[:3]} (only stored .npz)")
    unpacked = sum(e.file_size for e in entries)
    if unpacked > max_bytes:
        raise UpdateRejected(
            site_id, f"oversize: entries unpack to {unpacked} bytes > limit {max_bytes}"
        )


def check_manifest_types(site_id: str, manifest: UpdateManifest) -> None:
    """Field types a signed manifest must still have (a site's own key can sign nonsense)."""

    def number_or_none(value: object) -> bool:
        return value is None or (isinstance(value, int | float) and not isinstance(value, bool))

    problems = []
    if not isinstance(manifest.extra, dict):
        problems.append("extra is not an object")
    else:
        based_on = manifest.extra.get("global_version")
        if "global_version" not in manifest.extra:
            problems.append("extra.global_version is missing (the version the delta is against)")
        elif isinstance(based_on, bool) or not isinstance(based_on, int) or based_on < 0:
            problems.append("extra.global_version is not a non-negative integer")
    for name in ("run_id", "site_id", "content_sha256", "policy_digest", "version"):
        if not isinstance(getattr(manifest, name), str):
            problems.append(f"{name} is not a string")
    if isinstance(manifest.round, bool) or not isinstance(manifest.round, int):
        problems.append("round is not an integer")
    if not isinstance(manifest.dp, dict):
        problems.append("dp is not an object")
    if not isinstance(manifest.tensor_names, list) or not all(
        isinstance(n, str) for n in manifest.tensor_names
    ):
        problems.append("tensor_names is not a list of strings")
    for name in ("epsilon", "epsilon_pld", "delta"):
        if not number_or_none(getattr(manifest, name)):
            problems.append(f"{name} is not a number")
    if manifest.epsilon is not None and manifest.delta is None:
        problems.append("delta is missing (an epsilon means nothing without its delta)")
    count = manifest.num_examples
    if count is not None and (isinstance(count, bool) or not isinstance(count, int) or count < 1):
        problems.append("num_examples is not a positive integer")
    if problems:
        raise UpdateRejected(site_id, f"malformed manifest: {'; '.join(problems)}")


def check_privacy(
    site_id: str, manifest: UpdateManifest, *, epsilon_per_round: float, allow_dp_off: bool
) -> None:
    """Refuse updates whose declared epsilon is missing (DP required) or above the policy's."""
    eps = manifest.epsilon
    if eps is None:
        if not allow_dp_off:
            raise UpdateRejected(
                site_id, "manifest declares no DP epsilon and the policy has dp.allow_dp_off=false"
            )
        return
    if not math.isfinite(eps) or eps < 0:
        raise UpdateRejected(
            site_id, f"manifest epsilon {eps!r} is not a finite non-negative number"
        )
    if eps > epsilon_per_round * (1 + EPSILON_RTOL):
        raise UpdateRejected(
            site_id,
            f"manifest epsilon {eps:.6g} exceeds the policy's dp.epsilon_per_round "
            f"{epsilon_per_round:.6g}",
        )


def check_tensors(site_id: str, tensors: Mapping[str, np.ndarray], spec: ModelSpec) -> None:
    """Names, shapes, dtype float32 and finiteness against the global model."""
    missing = sorted(set(spec) - set(tensors))
    extra = sorted(set(tensors) - set(spec))
    if missing or extra:
        raise UpdateRejected(
            site_id, f"tensor names differ from the global model: missing {missing}, extra {extra}"
        )
    for name in sorted(spec):
        array = tensors[name]
        if array.dtype != np.float32:
            raise UpdateRejected(site_id, f"tensor {name!r} has dtype {array.dtype}, need float32")
        if tuple(array.shape) != spec[name]:
            raise UpdateRejected(
                site_id,
                f"tensor {name!r} has shape {tuple(array.shape)}, global model has {spec[name]}",
            )
        if not np.isfinite(array).all():
            bad = int(array.size - np.count_nonzero(np.isfinite(array)))
            raise UpdateRejected(site_id, f"tensor {name!r} has {bad} non-finite value(s)")


def verify_update(
    *,
    site_id: str,
    npz_bytes: bytes,
    manifest_bytes: bytes,
    public_key_pem: str,
    run_id: str,
    round_index: int,
    spec: ModelSpec,
    max_bytes: int,
    policy_digest: str | None,
    epsilon_per_round: float,
    allow_dp_off: bool,
    global_version: int,
) -> VerifiedUpdate:
    """Run every check on one site's update; return it verified or raise `UpdateRejected`.

    policy_digest: the digest the coordinator holds for the site's policy; None skips that check.
    global_version: the version this round starts from; the manifest must say
    (`extra.global_version`, required) that the delta is against exactly this version.
    """
    manifest = verified_manifest(
        site_id=site_id,
        payload=npz_bytes,
        manifest_bytes=manifest_bytes,
        public_key_pem=public_key_pem,
        run_id=run_id,
        round_index=round_index,
        max_bytes=max_bytes,
        policy_digest=policy_digest,
        epsilon_per_round=epsilon_per_round,
        allow_dp_off=allow_dp_off,
        global_version=global_version,
    )
    check_container(site_id, npz_bytes, max_bytes)
    try:
        tensors = load_tensors(npz_bytes)
    except TensorFormatError as exc:
        raise UpdateRejected(site_id, str(exc)) from exc
    if sorted(manifest.tensor_names) != sorted(tensors):
        raise UpdateRejected(site_id, "manifest tensor_names differ from the tensors in the file")
    check_tensors(site_id, tensors, spec)
    return VerifiedUpdate(site_id, tensors, manifest, len(npz_bytes))


def verified_manifest(
    *,
    site_id: str,
    payload: bytes,
    manifest_bytes: bytes,
    public_key_pem: str,
    run_id: str,
    round_index: int,
    max_bytes: int,
    policy_digest: str | None,
    epsilon_per_round: float,
    allow_dp_off: bool,
    global_version: int,
) -> UpdateManifest:
    """The checks every update passes before its payload is parsed (plain or encrypted):
    sizes, signature, run/round/site, content hash of `payload`, policy digest, field types,
    the global version, DP epsilon. Returns the manifest or raises `UpdateRejected`."""
    if len(payload) > max_bytes:
        raise UpdateRejected(site_id, f"oversize: {len(payload)} bytes > limit {max_bytes}")
    if len(manifest_bytes) > MAX_MANIFEST_BYTES:
        raise UpdateRejected(
            site_id, f"oversize manifest: {len(manifest_bytes)} bytes > {MAX_MANIFEST_BYTES}"
        )
    try:
        signed = SignedManifest.from_json(manifest_bytes)
        manifest = verify_manifest(
            signed,
            public_key_pem=public_key_pem,
            expected_site_id=site_id,
            expected_run_id=run_id,
            expected_round=round_index,
            content_sha256=sha256_hex(payload),
        )
    except ManifestError as exc:
        raise UpdateRejected(site_id, str(exc)) from exc
    if policy_digest is not None and manifest.policy_digest != policy_digest:
        raise UpdateRejected(
            site_id,
            f"exported under policy digest {manifest.policy_digest[:12]}…, the coordinator holds "
            f"{policy_digest[:12]}… for this site's policy",
        )
    check_manifest_types(site_id, manifest)
    based_on = manifest.extra["global_version"]
    if based_on != global_version:
        raise UpdateRejected(
            site_id,
            f"stale: a delta against global version {based_on}, this round starts from "
            f"version {global_version}",
        )
    check_privacy(site_id, manifest, epsilon_per_round=epsilon_per_round, allow_dp_off=allow_dp_off)
    return manifest


HE_WEIGHTS = ("num_examples", "uniform")


def spec_length(spec: ModelSpec) -> int:
    """How many values a model of `spec` holds (the length of its flattened vector)."""
    return sum(math.prod(shape) for shape in spec.values())


def encrypted_size_limit(spec: ModelSpec) -> int:
    """Largest acceptable ciphertext bundle of a model of `spec` (protection he)."""
    from components.he.wire import MAX_CHUNK_BYTES, MAX_HEADER_BYTES, expected_chunks

    return expected_chunks(spec_length(spec)) * MAX_CHUNK_BYTES + MAX_HEADER_BYTES


def verify_encrypted_update(
    *,
    site_id: str,
    bundle_bytes: bytes,
    manifest_bytes: bytes,
    public_key_pem: str,
    run_id: str,
    round_index: int,
    spec: ModelSpec,
    context_id: str,
    policy_digest: str | None,
    epsilon_per_round: float,
    allow_dp_off: bool,
    global_version: int,
) -> VerifiedUpdate:
    """`verify_update` for a CKKS-encrypted update (protection he): the same manifest checks,
    then the manifest's protection fields (he, this federation's context id, a known weight
    choice), its tensor names against the global model, and the bundle's header (context
    id, length, chunk count and sizes). Its values cannot be checked: no shape beyond the
    length, no finiteness, no norm (the coordinator holds no secret key)."""
    from components.he.ckks import HeError
    from components.he.wire import unpack_bundle

    manifest = verified_manifest(
        site_id=site_id,
        payload=bundle_bytes,
        manifest_bytes=manifest_bytes,
        public_key_pem=public_key_pem,
        run_id=run_id,
        round_index=round_index,
        max_bytes=encrypted_size_limit(spec),
        policy_digest=policy_digest,
        epsilon_per_round=epsilon_per_round,
        allow_dp_off=allow_dp_off,
        global_version=global_version,
    )
    extra = manifest.extra
    if extra.get("protection") != "he":
        raise UpdateRejected(site_id, "manifest does not say protection he (not encrypted)")
    if extra.get("he_context") != context_id:
        raise UpdateRejected(
            site_id,
            f"encrypted under CKKS context {extra.get('he_context')!r}, the coordinator's "
            f"public context is {context_id!r} (set up again? run fedpipe he-setup once for "
            "the whole federation)",
        )
    if extra.get("he_weight") not in HE_WEIGHTS:
        raise UpdateRejected(site_id, f"manifest he_weight {extra.get('he_weight')!r} unknown")
    if sorted(manifest.tensor_names) != sorted(spec):
        raise UpdateRejected(
            site_id,
            f"manifest tensor_names {sorted(manifest.tensor_names)} differ from the global "
            f"model's {sorted(spec)}",
        )
    try:
        bundle = unpack_bundle(bundle_bytes, context_id=context_id, length=spec_length(spec))
    except HeError as exc:
        raise UpdateRejected(site_id, str(exc)) from None
    return VerifiedUpdate(site_id, {}, manifest, len(bundle_bytes), ciphertext=bundle)


def residency_rule(site: Site, policy: Policy, coordinator: Site) -> str:
    """The name of the rule of `policy` that lets `coordinator` read `site`'s dp_update.

    Uses the config model's own matcher (`DestinationRule.matches`, deny by default); raises
    `UpdateRejected` (the update is then never fetched) when no rule matches.
    """
    for index, rule in enumerate(policy.rules_for("dp_update")):
        if rule.matches(coordinator):
            return Policy.rule_name(policy.id, "dp_update", index)
    raise UpdateRejected(
        site.id,
        f"residency: policy {policy.id} rules.dp_update lets no rule match coordinator "
        f"{coordinator.id} ({coordinator.jurisdiction}, {coordinator.region}, "
        f"{coordinator.provider}); update not read",
    )
