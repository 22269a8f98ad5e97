"""Coordinator tasks check the configuration they read from editable pipeline inputs (pure).

The fan-in and coordinator tasks take the compiled specs through pipeline inputs
(`config_coordinator`, `config_sites`, `config_policies`), which anyone can edit in the
Kubeflow run form. The compiler also hands each such task a constant `config_digest` over
exactly those texts; the executor refuses to act on texts with another digest.
"""

from __future__ import annotations

import hashlib


class ConfigDigestError(ValueError):
    """Configuration inputs that are not the ones the pipeline was compiled with."""


def config_digest(**texts: str) -> str:
    """sha256 (hex) over the named texts, in name order: `config_digest(sites_json=...)`."""
    body = "".join(f"{name}\x1f{texts[name]}\x1e" for name in sorted(texts))
    return hashlib.sha256(body.encode("utf-8")).hexdigest()


def check_config(expected: str, *, task: str, **texts: str) -> None:
    """ConfigDigestError naming `task` and the inputs unless `config_digest(**texts)` is
    `expected`."""
    actual = config_digest(**texts)
    if actual != expected:
        names = ", ".join(sorted(texts))
        raise ConfigDigestError(
            f"{task}: {names} are not the compiled configuration (sha256 {actual[:12]}..., "
            f"compiled {expected[:12]}...); recompile the pipeline instead of editing the "
            "config_* inputs in the run form"
        )
