"""Each local task's environment: the run's common variables plus its placement's secrets only.

On Kubernetes a task's pod gets, as environment variables, exactly the Secrets its placement
mounts (`secretAsEnv` in the compiled platform spec: a site task its own site's object-store
keys, export also its signing key, aggregate the coordinator's read-only key for each site). Locally the runner
writes each site's secrets as files (`<secrets>/<site>/<name>`, `LocalStores`); this module
gives every task the same variables its pod would get, read from those files, and nothing
else: no `FEDPIPE_SECRETS_DIR`, no other site's keys.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from pipelines.placement.credentials import READ_KEYS, SIGNING_KEYS

SECRET_NAMES = {**READ_KEYS, **SIGNING_KEYS}  # Secret key -> secret name (file name, lowered)
HIDDEN = ("FEDPIPE_SECRETS_DIR",)


def secret_files(
    platform_spec: Mapping[str, Any], secret_owner: Mapping[str, str], secrets_dir: Path
) -> dict[str, dict[str, str]]:
    """{executor label: {env var: secret file}} from the compiled Kubernetes platform spec.

    `secret_owner` maps a Secret's name to its folder under `secrets_dir`: the site id for
    `site.object_store.secret_name`, `<site>/coordinator-read` for the coordinator's read-only
    Secret of that site.
    ValueError for a Secret or key the run has no file for."""
    executors = (
        ((platform_spec.get("platforms") or {}).get("kubernetes") or {}).get("deploymentSpec") or {}
    ).get("executors") or {}
    out: dict[str, dict[str, str]] = {}
    for label, config in executors.items():
        env: dict[str, str] = {}
        for mount in config.get("secretAsEnv") or []:
            name = mount.get("secretName")
            site = secret_owner.get(name)
            if site is None:
                raise ValueError(f"executor {label}: Secret {name!r} belongs to no site")
            for item in mount.get("keyToEnv") or []:
                key = item.get("secretKey")
                if key not in SECRET_NAMES:
                    raise ValueError(f"executor {label}: unknown key {key!r} of Secret {name}")
                env[item["envVar"]] = str(secrets_dir / site / SECRET_NAMES[key].lower())
        out[label] = env
    return out


def task_environment(
    base: Mapping[str, str], files: Mapping[str, str], all_secret_vars: Iterable[str]
) -> dict[str, str]:
    """`base` without any site's secret variables or secrets folder, plus this task's own.

    A secret whose file is missing keeps the value `base` had (credentials given as
    environment variables, e.g. for already running stores), else stays unset."""
    hidden = set(all_secret_vars) | set(HIDDEN)
    env = {k: v for k, v in base.items() if k not in hidden}
    for var, path in files.items():
        if os.path.isfile(path):
            with open(path) as handle:
                env[var] = handle.read()
        elif var in base:
            env[var] = base[var]
    return env


def write_secret_files(path: Path, files: Mapping[str, Mapping[str, str]]) -> None:
    """Store the map (paths only, no secret values) for the kfp.local child."""
    path.write_text(json.dumps(files, indent=1, sort_keys=True))


def thread_environment(workers: int, cores: int | None = None) -> dict[str, str]:
    """TensorFlow/BLAS thread counts so that `workers` tasks at once fit `cores` (default: all).

    intra-op = max(1, cores // workers), inter-op = 1 when a task gets one core, else 2."""
    cores = cores or len(os.sched_getaffinity(0))
    intra = max(1, cores // max(1, workers))
    return {
        "TF_NUM_INTRAOP_THREADS": str(intra),
        "TF_NUM_INTEROP_THREADS": "1" if intra == 1 else "2",
        "OMP_NUM_THREADS": str(intra),
    }
