"""The `global_model` artifact folder: `model.npz`, `meta.json` and optional `optimizer.npz`.

Layout (components/CONTRACT.md, stages 1 and 5): `model.npz` holds the named float32 tensors
(`components.common.tensors`), `meta.json` at least `{"version": int, "model_name", "dataset",
"parent": str|null}`, and `optimizer.npz` the server optimizer's state after the aggregate that
produced this version (absent after initialize).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from components.common.artifact_files import (
    META_FILE,
    MODEL_FILE,
    OPTIMIZER_FILE,
    json_bytes,
)
from components.common.tensors import Tensors, dump_tensors, load_tensors

REQUIRED_META = ("version", "model_name", "dataset", "parent")
# The one ciphertext of an encrypted (protection he) global model, which has no model.npz.
ENCRYPTED_MARKER = "model.ckks"


class GlobalModelError(ValueError):
    """A global_model artifact folder that is missing files or fields."""


@dataclass(frozen=True)
class GlobalModel:
    """One global model version as it travels between tasks."""

    tensors: Tensors
    meta: dict[str, Any]
    optimizer_state: Tensors | None = field(default=None)

    @property
    def version(self) -> int:
        return int(self.meta["version"])


def write_global_model(folder: str | Path, model: GlobalModel) -> None:
    """Create `folder` and write model.npz, meta.json and (when present) optimizer.npz."""
    missing = [k for k in REQUIRED_META if k not in model.meta]
    if missing:
        raise GlobalModelError(f"global model meta lacks {missing} (folder {folder})")
    meta = json_bytes(model.meta)  # before anything is written: NaN in meta leaves nothing
    path = Path(folder)
    path.mkdir(parents=True, exist_ok=True)
    (path / MODEL_FILE).write_bytes(dump_tensors(model.tensors))
    (path / META_FILE).write_bytes(meta)
    if model.optimizer_state is not None:
        (path / OPTIMIZER_FILE).write_bytes(dump_tensors(model.optimizer_state))


def read_global_model(folder: str | Path) -> GlobalModel:
    """Read a global_model folder written by `write_global_model` (or by a KFP task)."""
    path = Path(folder)
    model_file, meta_file = path / MODEL_FILE, path / META_FILE
    if not model_file.is_file() and (path / ENCRYPTED_MARKER).is_file():
        raise GlobalModelError(
            f"global model artifact {path} is CKKS-encrypted (aggregation.protection he): "
            "only a site decrypts it, with its secret context "
            "(components.he.global_model.site_global_model)"
        )
    for required in (model_file, meta_file):
        if not required.is_file():
            raise GlobalModelError(f"global model artifact {path}: {required.name} missing")
    try:
        meta = json.loads(meta_file.read_text())
    except ValueError as exc:
        raise GlobalModelError(f"global model artifact {meta_file}: not JSON: {exc}") from exc
    missing = [k for k in REQUIRED_META if k not in meta]
    if missing:
        raise GlobalModelError(f"global model artifact {meta_file}: fields {missing} missing")
    optimizer_file = path / OPTIMIZER_FILE
    optimizer_state = (
        load_tensors(optimizer_file.read_bytes()) if optimizer_file.is_file() else None
    )
    return GlobalModel(load_tensors(model_file.read_bytes()), meta, optimizer_state)
