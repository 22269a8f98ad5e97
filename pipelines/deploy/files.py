"""Write a tree of text files all-or-nothing (staged beside the target, then moved)."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path


def write_tree(files: Mapping[str, str], out_dir: str | Path) -> list[Path]:
    """Write {relative path: text} under `out_dir`; returns the written paths.

    Everything is written into a sibling staging folder first, so a failure leaves `out_dir`
    as it was; a missing `out_dir` is created by renaming the staging folder, an existing one
    gets each file replaced (other files are left alone).
    """
    out = Path(out_dir)
    parent = out.resolve().parent
    parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}-staging-", dir=parent))
    try:
        for rel, text in files.items():
            path = staging / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
        if not out.exists():
            os.replace(staging, out)
        else:
            for rel in files:
                (out / rel).parent.mkdir(parents=True, exist_ok=True)
                os.replace(staging / rel, out / rel)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return [out / rel for rel in files]
