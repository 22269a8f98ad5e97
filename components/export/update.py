"""What an export publishes, computed without I/O: the delta, its manifest, the destination.

* delta = local - global, per named tensor, float32, finite, same names and shapes.
* The manifest carries run, round, site, DP parameters, epsilon (RDP and PLD), delta, the
  content hash and the policy digest. With `export.reveal_num_examples: false` it omits the
  sample count, the two DP fields that would give it away (sampling rate q = batch/N and
  the step count, epochs * N // batch) *and* the exact epsilon: an exact epsilon beside batch
  size, epochs and noise multiplier (pipeline parameters) gives N by inverting the
  accountant. The manifest then carries the policy's bound `dp.epsilon_per_round` as
  `epsilon` (what the coordinator checks; train's budget check guaranteed the exact value is
  at most that), no PLD figure, and `dp.epsilon_disclosure: "policy_bound"`
  (`components.privacy.disclosure`). The exact figures stay in the site's ledger.
* The destination is the site's own bucket from its own spec, an s3 store: anything else is
  refused at run time (defence in depth behind the compiler's residency check).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from components.common.artifact_files import MANIFEST_SUFFIX, TENSORS_SUFFIX
from components.common.manifest import UpdateManifest, update_object_key
from components.common.tensors import Tensors, dump_tensors
from components.domain.canonical import sha256_hex
from components.privacy.disclosure import published_epsilon

# DP fields that reveal the site's sample count (q = batch/N, steps = epochs * N // batch).
COUNT_REVEALING_DP_FIELDS = ("sampling_rate", "steps")


class ExportError(ValueError):
    """An update that cannot be exported (names the site and the reason)."""


class DestinationError(ExportError):
    """The export destination is not the site's own bucket as its spec and policy allow."""


def model_delta(
    local: Mapping[str, np.ndarray], global_: Mapping[str, np.ndarray], site_id: str
) -> Tensors:
    """local - global per tensor, float32; names and shapes must match, values be finite."""
    if set(local) != set(global_):
        raise ExportError(
            f"site {site_id}: local model tensors {sorted(local)} differ from the global "
            f"model's {sorted(global_)}"
        )
    delta: Tensors = {}
    for name in sorted(local):
        a = np.asarray(local[name], dtype=np.float32)
        b = np.asarray(global_[name], dtype=np.float32)
        if a.shape != b.shape:
            raise ExportError(
                f"site {site_id}: tensor {name} has shape {a.shape} locally, {b.shape} globally"
            )
        d = a - b
        if not np.isfinite(d).all():
            raise ExportError(f"site {site_id}: update tensor {name} has NaN or infinite values")
        delta[name] = d
    return delta


@dataclass(frozen=True)
class Destination:
    """Where the update goes: bucket, the key prefix (`update_object_key`) and the two keys."""

    bucket: str
    key: str
    tensors_key: str
    manifest_key: str


def check_destination(site: Any, run_id: str, round_: int) -> Destination:
    """The site's own bucket under `update_object_key(run, round, site)`; DestinationError if
    the spec does not give an s3 store for a role-site member (the only place a site's update
    may be written by the site itself)."""
    store = site.object_store
    if site.role != "site":
        raise DestinationError(f"site {site.id}: role {site.role!r} cannot export updates")
    if store.type != "s3":
        raise DestinationError(
            f"site {site.id}: object_store.type {store.type!r}; updates go to the site's own "
            "S3-compatible (MinIO) bucket only"
        )
    prefix = update_object_key(run_id, round_, site.id)
    return Destination(store.bucket, prefix, prefix + TENSORS_SUFFIX, prefix + MANIFEST_SUFFIX)


def build_manifest(
    *,
    run_id: str,
    round_: int,
    site_id: str,
    payload: bytes,
    tensor_names: list[str],
    train_meta: Mapping[str, Any],
    reveal_num_examples: bool,
    epsilon_per_round: float,
    policy_digest: str,
    extra: Mapping[str, Any],
) -> UpdateManifest:
    """The unsigned manifest of `payload` (the `dump_tensors` bytes of the delta).

    `epsilon_per_round`: the policy's bound, published instead of the exact epsilon when
    `reveal_num_examples` is false (DisclosureError if the exact value exceeds it)."""
    dp = dict(train_meta.get("dp") or {})
    num_examples = train_meta.get("num_examples")
    if not reveal_num_examples:
        for name in COUNT_REVEALING_DP_FIELDS:
            dp.pop(name, None)
        num_examples = None
    published = published_epsilon(
        train_meta.get("epsilon"),
        train_meta.get("epsilon_pld"),
        reveal_num_examples=reveal_num_examples,
        epsilon_per_round=epsilon_per_round,
        site_id=site_id,
    )
    if published.epsilon is not None:
        dp["epsilon_disclosure"] = published.disclosure
    return UpdateManifest(
        run_id=run_id,
        round=round_,
        site_id=site_id,
        content_sha256=sha256_hex(payload),
        tensor_names=sorted(tensor_names),
        dp=dp,
        epsilon=published.epsilon,
        epsilon_pld=published.epsilon_pld,
        delta=train_meta.get("delta"),
        num_examples=None if num_examples is None else int(num_examples),
        policy_digest=policy_digest,
        extra=dict(extra),
    )


def encode_delta(delta: Mapping[str, np.ndarray]) -> bytes:
    """The deterministic `.npz` bytes of the delta (`components.common.tensors`)."""
    return dump_tensors(delta)
