"""Where the checked-in example federation lives, for tests that read it."""

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SITES_DIR = REPO / "sites"
POLICIES_DIR = REPO / "policies"
