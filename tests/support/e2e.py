"""Running the ``fedpipe`` CLI as a user would (a subprocess) and reading what a local run left."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from components.privacy.ledger import LedgerEntry
from tests.support.paths import REPO

SITES = ["clinic-boston", "hospital-berlin", "hospital-paris"]
"""The example federation's site ids (sites/)."""


def fedpipe(*args: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    """``fedpipe ARGS`` in a subprocess from the repo root; the run starts its own stores."""
    env = dict(os.environ)
    for name in ("FEDPIPE_SECRETS_DIR", "FEDPIPE_ENDPOINT_OVERRIDES", "STORAGE_EMULATOR_HOST"):
        env.pop(name, None)
    return subprocess.run(
        [sys.executable, "-c", "from pipelines.cli import console_main; console_main()", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )


def ledger_entries(runs: Path, site: str) -> list[LedgerEntry]:
    """A site's ledger entries as the local run's mirrored bucket holds them, in key order."""
    root = runs / ".state" / "s3" / f"{site}-fl" / "ledger" / site
    return [LedgerEntry.from_json(p.read_bytes()) for p in sorted(root.rglob("*.json"))]
