"""The container image every fedpipe component runs in (this repo in the pinned env)."""

from __future__ import annotations

import os

# Built from this repository; a site's `image_registry` rewrites the registry part at compile time.
FEDPIPE_IMAGE = os.environ.get("FEDPIPE_IMAGE", "ghcr.io/fedpipe/fedpipe:0.1.0")
