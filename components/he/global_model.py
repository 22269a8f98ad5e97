"""The global model under `aggregation.protection: he`: a plain base and encrypted aggregates.

The coordinator never holds a decrypted model after round 1: it adds the sites' ciphertexts
and publishes the encrypted aggregate of each round. So the `global_model` artifact of an
aggregate task holds

* `base.npz` + the meta's `he.base_version`: the last model the coordinator knows in the
  clear (initialize's version 0, named float32 tensors);
* one `he-v<k>.ckks` bundle per round since (`components.he.wire`), each Enc([Σ wᵢΔᵢ, Σ wᵢ]),
  listed with its sha256 in `meta.json` `he.aggregates`;
* `meta.json` with `"protection": "he"` and the usual fields (version, parent, ...).

A site reconstructs version r as plain FedAvg would have built it: v ← v + mean_k, in
float32, for k = base+1 … r, each mean_k = Σ wᵢΔᵢ / Σ wᵢ decrypted with its secret context
(`decrypt_global`). Decryption is deterministic, so every site gets the same tensors.
`components.common.global_model.read_global_model` refuses such a folder (it has no
`model.npz`) and points here.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from components.common.artifact_files import META_FILE, json_bytes
from components.common.global_model import (
    ENCRYPTED_MARKER,
    REQUIRED_META,
    GlobalModel,
    GlobalModelError,
    read_global_model,
)
from components.common.tensors import Tensors, dump_tensors, load_tensors
from components.domain.canonical import sha256_hex
from components.he.ckks import HeError, decrypt_mean
from components.he.wire import unpack_bundle

PROTECTION_HE = "he"
BASE_FILE = ENCRYPTED_MARKER


def aggregate_file(version: int) -> str:
    return f"he-v{version}.ckks"


def is_encrypted(meta: Mapping[str, Any]) -> bool:
    """An encrypted folder's meta (a decrypted copy keeps `protection` but not `he`)."""
    return meta.get("protection") == PROTECTION_HE and isinstance(meta.get("he"), dict)


@dataclass(frozen=True)
class EncryptedGlobal:
    """An encrypted global model version: plain base, and the bundles of the rounds since."""

    base: Tensors
    meta: dict[str, Any]
    aggregates: tuple[tuple[int, bytes], ...]  # (version, bundle), in version order

    @property
    def version(self) -> int:
        return int(self.meta["version"])

    @property
    def context_id(self) -> str:
        return str(self.meta["he"]["context_id"])


def layout(tensors: Mapping[str, np.ndarray]) -> list[tuple[str, tuple[int, ...]]]:
    """(name, shape) of every tensor, sorted by name: the order of the flat vector."""
    return [(n, tuple(int(d) for d in np.shape(tensors[n]))) for n in sorted(tensors)]


def flatten(tensors: Mapping[str, np.ndarray]) -> np.ndarray:
    """The tensors as one float64 vector in `layout` order."""
    return np.concatenate(
        [np.asarray(tensors[n], dtype=np.float64).ravel() for n in sorted(tensors)]
    )


def unflatten(vector: np.ndarray, shapes: list[tuple[str, tuple[int, ...]]]) -> Tensors:
    """Inverse of `flatten` (float32 tensors); HeError when the length does not fit."""
    total = sum(math.prod(s) for _, s in shapes)
    if vector.size != total:
        raise HeError(f"decrypted {vector.size} values, the model has {total}")
    out: Tensors = {}
    offset = 0
    for name, shape in shapes:
        size = math.prod(shape)
        out[name] = np.asarray(vector[offset : offset + size], dtype=np.float32).reshape(shape)
        offset += size
    return out


def encrypted_from(
    previous: GlobalModel | EncryptedGlobal,
    *,
    context_id: str,
    version: int,
    bundle: bytes,
    meta: Mapping[str, Any],
) -> EncryptedGlobal:
    """The next version: `previous`'s base and bundles plus this round's (pure)."""
    if isinstance(previous, EncryptedGlobal):
        if previous.context_id != context_id:
            raise HeError(
                f"version {previous.version} was encrypted under CKKS context "
                f"{previous.context_id}, this round's is {context_id}"
            )
        base, base_version, chain = (
            previous.base,
            previous.meta["he"]["base_version"],
            list(previous.aggregates),
        )
    else:
        base, base_version, chain = previous.tensors, previous.version, []
    chain.append((version, bundle))
    he = {
        "context_id": context_id,
        "base_version": base_version,
        "aggregates": [
            {"version": v, "file": aggregate_file(v), "sha256": sha256_hex(b)} for v, b in chain
        ],
    }
    return EncryptedGlobal(
        base, {**meta, "version": version, "protection": PROTECTION_HE, "he": he}, tuple(chain)
    )


def write_encrypted(folder: str | Path, model: EncryptedGlobal) -> None:
    missing = [k for k in REQUIRED_META if k not in model.meta]
    if missing:
        raise GlobalModelError(f"global model meta lacks {missing} (folder {folder})")
    meta = json_bytes(model.meta)
    path = Path(folder)
    path.mkdir(parents=True, exist_ok=True)
    (path / BASE_FILE).write_bytes(dump_tensors(model.base))
    for version, bundle in model.aggregates:
        (path / aggregate_file(version)).write_bytes(bundle)
    (path / META_FILE).write_bytes(meta)


def read_encrypted(folder: str | Path) -> EncryptedGlobal:
    """An encrypted global model folder, every bundle checked against its recorded sha256."""
    path = Path(folder)
    try:
        meta = json.loads((path / META_FILE).read_text())
        he = meta["he"]
        listed = [(int(a["version"]), str(a["sha256"])) for a in he["aggregates"]]
        base = load_tensors((path / BASE_FILE).read_bytes())
        context_id = he["context_id"]
        base_version = int(he["base_version"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise GlobalModelError(f"encrypted global model {path}: unreadable ({exc})") from None
    if not isinstance(context_id, str) or not is_encrypted(meta):
        raise GlobalModelError(f"encrypted global model {path}: meta is not an he model's")
    if [v for v, _ in listed] != list(range(base_version + 1, int(meta["version"]) + 1)):
        raise GlobalModelError(
            f"encrypted global model {path}: aggregates {[v for v, _ in listed]} do not lead "
            f"from version {base_version} to {meta['version']}"
        )
    chain = []
    for version, digest in listed:
        try:
            bundle = (path / aggregate_file(version)).read_bytes()
        except OSError as exc:
            raise GlobalModelError(f"encrypted global model {path}: {exc}") from None
        if sha256_hex(bundle) != digest:
            raise GlobalModelError(
                f"encrypted global model {path}: {aggregate_file(version)} differs from the "
                "sha256 in meta.json"
            )
        chain.append((version, bundle))
    return EncryptedGlobal(base, meta, tuple(chain))


def read_any(folder: str | Path) -> GlobalModel | EncryptedGlobal:
    """The coordinator's view of a global_model folder: plain, or encrypted."""
    meta_path = Path(folder) / META_FILE
    try:
        meta = json.loads(meta_path.read_text())
    except (OSError, ValueError) as exc:
        raise GlobalModelError(f"global model artifact {meta_path}: {exc}") from None
    return read_encrypted(folder) if is_encrypted(meta) else read_global_model(folder)


def decrypt_global(model: EncryptedGlobal, context: Any, context_id: str) -> GlobalModel:
    """The plain global model (tensors of version `model.version`), decrypted with a site's
    secret `context` set up under `context_id`."""
    if model.context_id != context_id:
        raise HeError(
            f"global model v{model.version} is encrypted under CKKS context "
            f"{model.context_id}, this site holds {context_id} (set up again? every site "
            "and the coordinator need the same setup)"
        )
    shapes = layout(model.base)
    length = sum(math.prod(s) for _, s in shapes)
    tensors = {n: np.asarray(t, dtype=np.float32) for n, t in model.base.items()}
    for version, data in model.aggregates:
        bundle = unpack_bundle(
            data, context_id=context_id, length=length, where=f"aggregate of version {version}"
        )
        mean, _ = decrypt_mean(context, bundle)
        delta = unflatten(mean, shapes)
        tensors = {n: tensors[n] + delta[n] for n in tensors}  # float32, as FedAvg's step
    meta = {k: v for k, v in model.meta.items() if k != "he"}
    meta["decrypted_from"] = {
        "context_id": context_id,
        "base_version": model.meta["he"]["base_version"],
    }
    return GlobalModel(tensors, meta, None)


def site_global_model(folder: str | Path, site: Any, client: Callable[[], Any]) -> GlobalModel:
    """The global model a site task starts from: a plain folder as it is; an encrypted one
    decrypted with the site's secret context from its own bucket (`client()` is called only
    then)."""
    meta_path = Path(folder) / META_FILE
    try:
        meta = json.loads(meta_path.read_text())
    except (OSError, ValueError):
        return read_global_model(folder)  # its error names what is missing
    if not is_encrypted(meta):
        return read_global_model(folder)
    from components.he.keys import site_context

    loaded = site_context(site, client())
    return decrypt_global(read_encrypted(folder), loaded.context, loaded.context_id)
