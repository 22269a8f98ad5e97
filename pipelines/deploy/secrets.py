"""Which Secrets (and keys) each placement's tasks read, from a compiled platform spec (pure).

Read from what the compiler wrote (`secretAsEnv` / `secretAsVolume` per executor, placement from
its `fedpipe.dev/site` pod label), so the manifests and `doctor` follow whatever Secrets the
placement helpers reference, without naming them again.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pipelines.placement.labels import SITE_LABEL


class SecretRefError(ValueError):
    """A platform spec whose Secret references cannot be attributed to a placement."""


def _secret_name(entry: Mapping[str, Any], executor: str) -> str:
    name = entry.get("secretName") or (
        entry.get("secretNameParameter", {}).get("runtimeValue", {}).get("constant")
    )
    if not isinstance(name, str) or not name:
        raise SecretRefError(f"executor {executor}: a Secret reference without a constant name")
    return name


def secret_refs(platform: Mapping[str, Any]) -> dict[str, dict[str, frozenset[str]]]:
    """{placement: {Secret name: keys read}}, sorted by placement and name.

    A Secret mounted as a volume without `items` counts with no keys (the whole Secret).
    """
    executors = (
        platform.get("platforms", {})
        .get("kubernetes", {})
        .get("deploymentSpec", {})
        .get("executors", {})
    )
    found: dict[str, dict[str, set[str]]] = {}
    for executor, config in executors.items():
        entries = [(e, "env") for e in config.get("secretAsEnv", [])]
        entries += [(e, "volume") for e in config.get("secretAsVolume", [])]
        if not entries:
            continue
        placement = config.get("podMetadata", {}).get("labels", {}).get(SITE_LABEL)
        if not placement:
            raise SecretRefError(
                f"executor {executor}: reads a Secret but has no {SITE_LABEL} label"
            )
        for entry, how in entries:
            keys = found.setdefault(placement, {}).setdefault(_secret_name(entry, executor), set())
            if how == "env":
                keys.update(k["secretKey"] for k in entry.get("keyToEnv", []))
            else:
                keys.update(i["key"] for i in entry.get("items", []) if "key" in i)
    return {
        p: {name: frozenset(keys) for name, keys in sorted(found[p].items())} for p in sorted(found)
    }


def secrets_by_name(refs: Mapping[str, Mapping[str, frozenset[str]]]) -> dict[str, dict[str, Any]]:
    """{Secret name: {"keys": sorted keys, "read_by": sorted placements}} over all placements."""
    out: dict[str, dict[str, set[str]]] = {}
    for placement, secrets in refs.items():
        for name, keys in secrets.items():
            entry = out.setdefault(name, {"keys": set(), "read_by": set()})
            entry["keys"].update(keys)
            entry["read_by"].add(placement)
    return {
        name: {"keys": sorted(e["keys"]), "read_by": sorted(e["read_by"])}
        for name, e in sorted(out.items())
    }
