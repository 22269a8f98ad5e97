"""A list of named-tensor updates seen as one (K, P) float32 matrix, read in column blocks.

The matrix is never materialised: each update keeps its own arrays and a block of columns
is gathered into one small reusable C-contiguous (K, width) buffer, so a rule's working set
stays in cache and its extra memory is O(K·width), not O(K·P).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

Update = Mapping[str, np.ndarray]


class UpdateShapeError(ValueError):
    """Updates that cannot be combined: empty list, other names, shapes or dtypes."""


@dataclass(frozen=True)
class Layout:
    """Tensor names (sorted), their shapes and the flattened size P of one update."""

    names: tuple[str, ...]
    shapes: tuple[tuple[int, ...], ...]

    @property
    def size(self) -> int:
        """P: number of float32 parameters of one update."""
        return sum(int(np.prod(s)) for s in self.shapes)


def check_updates(updates: Sequence[Update]) -> Layout:
    """The common layout of `updates`; UpdateShapeError naming the first offending update.

    Every update must hold the same tensor names as update 0, each a float32 array of the
    same shape.
    """
    if len(updates) == 0:
        raise UpdateShapeError("no updates to aggregate (the list is empty)")
    first = updates[0]
    names = tuple(sorted(first))
    if not names:
        raise UpdateShapeError("update 0 holds no tensors")
    shapes = tuple(tuple(np.shape(first[n])) for n in names)
    for k, update in enumerate(updates):
        got = set(update)
        if got != set(names):
            missing = sorted(set(names) - got)
            extra = sorted(got - set(names))
            raise UpdateShapeError(
                f"update {k}: tensor names differ from update 0 "
                f"(missing {missing}, unexpected {extra})"
            )
        for name, shape in zip(names, shapes, strict=True):
            arr = update[name]
            if not isinstance(arr, np.ndarray):
                raise UpdateShapeError(
                    f"update {k}: tensor {name!r} is a {type(arr).__name__}, "
                    f"expected a float32 numpy array"
                )
            if arr.dtype != np.float32:
                raise UpdateShapeError(
                    f"update {k}: tensor {name!r} has dtype {arr.dtype}, expected float32"
                )
            if arr.shape != shape:
                raise UpdateShapeError(
                    f"update {k}: tensor {name!r} has shape {arr.shape}, "
                    f"expected {shape} as in update 0"
                )
    return Layout(names, shapes)


def flat(arr: np.ndarray) -> np.ndarray:
    """A 1-D view of `arr` (a copy only when `arr` is not contiguous)."""
    return arr.reshape(-1)


def block_width(k: int, budget_bytes: int = 1 << 20, lo: int = 1024, hi: int = 16384) -> int:
    """Columns per block: a power of two with K·width float32 values near `budget_bytes`."""
    width = hi
    while width > lo and k * width * 4 > budget_bytes:
        width //= 2
    return width


def column_blocks(
    updates: Sequence[Update], layout: Layout, width: int
) -> Iterator[tuple[str, int, int, np.ndarray]]:
    """Yield (name, start, stop, block) over every tensor in `width`-column pieces.

    `block` is a (K, stop-start) C-contiguous float32 view of one reused buffer holding the
    flattened columns [start, stop) of tensor `name` of every update; it is overwritten by
    the next iteration, so consume (or copy) it before advancing.
    """
    k = len(updates)
    buf = np.empty(k * width, dtype=np.float32)
    for name in layout.names:
        rows = [flat(u[name]) for u in updates]
        size = rows[0].size
        for start in range(0, size, width):
            stop = min(size, start + width)
            block = buf[: k * (stop - start)].reshape(k, stop - start)
            for i, row in enumerate(rows):
                block[i] = row[start:stop]
            yield name, start, stop, block
