"""The global model under `aggregation.protection: he`: one ciphertext of the whole model.

The coordinator never holds a decrypted model after round 1. At the first encrypted round it
encrypts the plain model it starts from (initialize's v0) with the public context (which
can encrypt, not decrypt); every round then adds the sites' weighted updates divided by the
round's total weight (`components.he.ckks.step_model`), so the artifact stays one ciphertext
of Enc([v_r..., r - base]) however many rounds ran. The `global_model` artifact of an
aggregate task holds

* `model.ckks`: that ciphertext as a bundle (`components.he.wire`);
* `meta.json` with `"protection": "he"`, the usual fields (version, parent, ...) and `he`
  `{"context_id", "base_version", "layout": [[name, shape], ...], "sha256"}`: the last
  version known in the clear, the tensors' names and shapes (the order of the flat vector),
  the bundle's digest.

A site decrypts it with its secret context (`decrypt_global`) into float32 tensors; the last
slot must read `version - base_version` (one per FedAvg step), else the coordinator divided
by a total weight that is not the sites' and the site refuses the model.
`components.common.global_model.read_global_model` refuses such a folder (it has no
`model.npz`) and points here.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping, Sequence
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
from components.common.tensors import Tensors
from components.domain.canonical import sha256_hex
from components.he.ckks import EncryptedUpdate, HeError, decrypt_model, encrypt_model, step_model
from components.he.wire import pack_bundle, unpack_bundle

PROTECTION_HE = "he"
MODEL_CIPHERTEXT = ENCRYPTED_MARKER  # model.ckks
# |decrypted step count - expected| above this: not the FedAvg of the sites' weights.
STEP_TOLERANCE = 1e-3

Layout = list[tuple[str, tuple[int, ...]]]


def is_encrypted(meta: Mapping[str, Any]) -> bool:
    """An encrypted folder's meta (a decrypted copy keeps `protection` but not `he`)."""
    return meta.get("protection") == PROTECTION_HE and isinstance(meta.get("he"), dict)


@dataclass(frozen=True)
class EncryptedGlobal:
    """An encrypted global model version: its meta and the one ciphertext bundle."""

    meta: dict[str, Any]
    bundle: bytes

    @property
    def version(self) -> int:
        return int(self.meta["version"])

    @property
    def context_id(self) -> str:
        return str(self.meta["he"]["context_id"])

    @property
    def layout(self) -> Layout:
        return [(str(n), tuple(int(d) for d in s)) for n, s in self.meta["he"]["layout"]]

    @property
    def spec(self) -> dict[str, tuple[int, ...]]:
        return dict(self.layout)

    def ciphertext(self) -> EncryptedUpdate:
        """The bundle's chunks, checked against the context id and the layout's length."""
        length = sum(math.prod(s) for _, s in self.layout)
        return unpack_bundle(
            self.bundle,
            context_id=self.context_id,
            length=length,
            where=f"encrypted global model v{self.version}",
        )


def layout(tensors: Mapping[str, np.ndarray]) -> Layout:
    """(name, shape) of every tensor, sorted by name: the order of the flat vector."""
    return [(n, tuple(int(d) for d in np.shape(tensors[n]))) for n in sorted(tensors)]


def flatten(tensors: Mapping[str, np.ndarray]) -> np.ndarray:
    """The tensors as one float64 vector in `layout` order."""
    return np.concatenate(
        [np.asarray(tensors[n], dtype=np.float64).ravel() for n in sorted(tensors)]
    )


def unflatten(vector: np.ndarray, shapes: Layout) -> Tensors:
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
    """The next version's artifact: `bundle` (Enc of the new model) with `previous`'s base
    version and layout (pure)."""
    if isinstance(previous, EncryptedGlobal):
        if previous.context_id != context_id:
            raise HeError(
                f"version {previous.version} was encrypted under CKKS context "
                f"{previous.context_id}, this round's is {context_id}"
            )
        base_version, shapes = int(previous.meta["he"]["base_version"]), previous.layout
    else:
        base_version, shapes = previous.version, layout(previous.tensors)
    he = {
        "context_id": context_id,
        "base_version": base_version,
        "layout": [[n, list(s)] for n, s in shapes],
        "sha256": sha256_hex(bundle),
    }
    return EncryptedGlobal(
        {**meta, "version": version, "protection": PROTECTION_HE, "he": he}, bundle
    )


def next_model(
    previous: GlobalModel | EncryptedGlobal,
    public: Any,
    context_id: str,
    updates: Sequence[EncryptedUpdate],
    total_weight: float,
) -> bytes:
    """The coordinator's new model bundle: `previous` (encrypted with the public context when
    it is still plain) plus the round's weighted mean update; one ciphertext bundle."""
    if isinstance(previous, EncryptedGlobal):
        current = previous.ciphertext()
    else:
        current = encrypt_model(public, flatten(previous.tensors))
    return pack_bundle(step_model(public, current, updates, total_weight), context_id)


def write_encrypted(folder: str | Path, model: EncryptedGlobal) -> None:
    missing = [k for k in REQUIRED_META if k not in model.meta]
    if missing:
        raise GlobalModelError(f"global model meta lacks {missing} (folder {folder})")
    meta = json_bytes(model.meta)
    path = Path(folder)
    path.mkdir(parents=True, exist_ok=True)
    (path / MODEL_CIPHERTEXT).write_bytes(model.bundle)
    (path / META_FILE).write_bytes(meta)


def encrypted_from_bytes(meta: Mapping[str, Any], bundle: bytes, where: str) -> EncryptedGlobal:
    """An encrypted version from its meta and bundle bytes (an artifact folder, or a
    published version), the bundle checked against the sha256 in the meta."""
    try:
        he = meta["he"]
        context_id, digest = he["context_id"], he["sha256"]
        numbers = [int(he["base_version"]), int(meta["version"])]
        numbers += [int(d) for _, shape in he["layout"] for d in shape]
    except (ValueError, KeyError, TypeError) as exc:
        raise GlobalModelError(f"encrypted global model {where}: meta unreadable ({exc})") from None
    if not isinstance(context_id, str) or not is_encrypted(meta):
        raise GlobalModelError(f"encrypted global model {where}: meta is not an he model's")
    if sha256_hex(bundle) != digest:
        raise GlobalModelError(
            f"encrypted global model {where}: {MODEL_CIPHERTEXT} differs from the sha256 in "
            "meta.json"
        )
    return EncryptedGlobal(dict(meta), bundle)


def read_encrypted(folder: str | Path) -> EncryptedGlobal:
    """An encrypted global model folder, its bundle checked against its recorded sha256."""
    path = Path(folder)
    try:
        meta = json.loads((path / META_FILE).read_text())
        bundle = (path / MODEL_CIPHERTEXT).read_bytes()
    except (OSError, ValueError) as exc:
        raise GlobalModelError(f"encrypted global model {path}: unreadable ({exc})") from None
    return encrypted_from_bytes(meta, bundle, str(path))


def read_any(folder: str | Path) -> GlobalModel | EncryptedGlobal:
    """The coordinator's view of a global_model folder: plain, or encrypted."""
    meta_path = Path(folder) / META_FILE
    try:
        meta = json.loads(meta_path.read_text())
    except (OSError, ValueError) as exc:
        raise GlobalModelError(f"global model artifact {meta_path}: {exc}") from None
    return read_encrypted(folder) if is_encrypted(meta) else read_global_model(folder)


def decrypt_global(model: EncryptedGlobal, context: Any, context_id: str) -> GlobalModel:
    """The plain global model (float32 tensors of version `model.version`), decrypted with a
    site's secret `context` set up under `context_id`; HeError when the step count slot says
    the coordinator did not divide by the sites' total weight."""
    if model.context_id != context_id:
        raise HeError(
            f"global model v{model.version} is encrypted under CKKS context "
            f"{model.context_id}, this site holds {context_id} (set up again? every site "
            "and the coordinator need the same setup)"
        )
    values, steps = decrypt_model(context, model.ciphertext())
    base_version = int(model.meta["he"]["base_version"])
    expected = model.version - base_version
    if not abs(steps - expected) <= STEP_TOLERANCE:
        raise HeError(
            f"global model v{model.version}: its weight slot reads {steps:.6g}, expected "
            f"{expected} FedAvg steps since v{base_version}; the coordinator did not divide "
            "by the sites' total weight (refused)"
        )
    tensors = unflatten(values, model.layout)
    meta = {k: v for k, v in model.meta.items() if k != "he"}
    meta["decrypted_from"] = {"context_id": context_id, "base_version": base_version}
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
