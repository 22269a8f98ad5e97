"""The files inside fedpipe's artifact folders and object keys, and the one way JSON is written.

Every task output is a folder (`artifact.path`); the files in it (components/CONTRACT.md):

| file | written by | artifact |
|---|---|---|
| `summary.json` | validate, report | validation summary; the run's summary |
| `meta.json` | initialize, train, aggregate | global_model / local_model meta |
| `model.npz` | initialize, train, aggregate | named float32 tensors |
| `optimizer.npz` | aggregate | server optimizer state (global_model) |
| `ref.json` | train (stash), export | reference to an object in the site's bucket |
| `round.json` | aggregate | the round report |
| `metrics.json` | evaluate | one site's evaluation |

An exported update is the object pair `<key>.npz` + `<key>.manifest.json` in the site's
bucket. JSON documents (artifact files and stored objects) are written as canonical JSON
(`components.domain.canonical.canonical_dumps`: sorted keys, no whitespace, NaN refused).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from components.domain.canonical import canonical_dumps

SUMMARY_FILE = "summary.json"
META_FILE = "meta.json"
MODEL_FILE = "model.npz"
OPTIMIZER_FILE = "optimizer.npz"
REF_FILE = "ref.json"
ROUND_FILE = "round.json"
METRICS_FILE = "metrics.json"
TENSORS_SUFFIX = ".npz"
MANIFEST_SUFFIX = ".manifest.json"


def json_bytes(value: Any) -> bytes:
    """`value` as canonical JSON, UTF-8 (ValueError for NaN or infinity)."""
    return canonical_dumps(value).encode("utf-8")


def write_json(folder: str | Path, name: str, value: Mapping[str, Any]) -> Path:
    """Create `folder` and write `value` to `folder/name` as canonical JSON; returns the path.

    The text is built before anything is created, so a value JSON cannot hold (NaN, a set)
    leaves nothing behind."""
    data = json_bytes(value)
    path = Path(folder) / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def read_json(folder: str | Path, name: str) -> Any:
    """The JSON document `folder/name` (OSError when missing, ValueError when not JSON)."""
    return json.loads((Path(folder) / name).read_text(encoding="utf-8"))


def validation_failure(folder: str | Path) -> str | None:
    """None when the validation artifact's `summary.json` passed, else the reason a site task
    abstains (an unreadable summary included)."""
    path = Path(folder) / SUMMARY_FILE
    try:
        summary = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        return f"validation summary unreadable ({path}: {type(exc).__name__})"
    if summary.get("passed") is True:
        return None
    return f"validation failed: {summary.get('reason') or 'expectations not met'}"
