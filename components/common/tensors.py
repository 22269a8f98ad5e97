"""Named float32 tensors in a framework-free format (numpy .npz, no pickle)."""

from __future__ import annotations

import io
from collections.abc import Mapping

import numpy as np

Tensors = dict[str, np.ndarray]


class TensorFormatError(ValueError):
    """Bytes that are not a valid fedpipe tensor file."""


def dump_tensors(tensors: Mapping[str, np.ndarray]) -> bytes:
    """Serialize named tensors to .npz bytes, float32, names sorted (deterministic bytes)."""
    buf = io.BytesIO()
    arrays = {
        name: np.ascontiguousarray(tensors[name], dtype=np.float32) for name in sorted(tensors)
    }
    # np.savez writes zip entries with a fixed timestamp, so equal tensors give equal bytes.
    np.savez(buf, **arrays)
    return buf.getvalue()


def load_tensors(data: bytes) -> Tensors:
    """Parse .npz bytes written by `dump_tensors`; refuses pickled objects."""
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as npz:
            return {name: npz[name] for name in npz.files}
    except Exception as exc:  # zipfile.BadZipFile, ValueError, OSError, EOFError
        raise TensorFormatError(f"not a valid tensor file: {exc}") from exc
