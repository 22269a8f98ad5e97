"""Object names and labels as the API server checks them (the OpenAPI schemas do not; pure)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")  # DNS-1123 label
_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_LABEL_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
# kinds whose name must be a DNS-1123 label (the rest here: DNS-1123 subdomains)
_LABEL_NAMED_KINDS = frozenset({"Namespace"})


def dns_label_error(value: str) -> str | None:
    if len(value) > 63 or not _LABEL.match(value):
        return f"{value!r} is not a DNS-1123 label (lowercase alphanumerics and '-', at most 63)"
    return None


def dns_subdomain_error(value: str) -> str | None:
    if len(value) > 253 or not _SUBDOMAIN.match(value):
        return f"{value!r} is not a DNS-1123 subdomain (lowercase alphanumerics, '-', '.')"
    return None


def label_errors(key: str, value: str) -> list[str]:
    """What is wrong with one label `key: value` (qualified key, value at most 63)."""
    errors = []
    prefix, slash, name = key.rpartition("/")
    if slash and dns_subdomain_error(prefix):
        errors.append(f"label key {key!r}: prefix {dns_subdomain_error(prefix)}")
    if len(name) > 63 or not _LABEL_NAME.match(name):
        errors.append(
            f"label key {key!r}: name part is not valid (at most 63, alphanumerics, '-_.')"
        )
    if len(value) > 63 or (value and not _LABEL_NAME.match(value)):
        errors.append(
            f"label {key}: value {value!r} is not valid (at most 63, alphanumerics, '-_.')"
        )
    return errors


def _label_maps(node: Any, path: str) -> Iterator[tuple[str, dict[str, str]]]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("labels", "matchLabels") and isinstance(value, dict):
                yield f"{path}.{key}", value
            else:
                yield from _label_maps(value, f"{path}.{key}")
    elif isinstance(node, list):
        for i, item in enumerate(node):
            yield from _label_maps(item, f"{path}[{i}]")


def name_errors(obj: dict[str, Any]) -> list[str]:
    """Problems with the object's name, namespace and every label map in it."""
    meta = obj.get("metadata", {})
    errors = []
    name = str(meta.get("name", ""))
    check = dns_label_error if obj.get("kind") in _LABEL_NAMED_KINDS else dns_subdomain_error
    if problem := check(name):
        errors.append(f"metadata.name: {problem}")
    if "namespace" in meta and (problem := dns_label_error(str(meta["namespace"]))):
        errors.append(f"metadata.namespace: {problem}")
    for path, labels in _label_maps(obj, ""):
        errors += [
            f"{path.lstrip('.')}: {e}" for k, v in labels.items() for e in label_errors(k, v)
        ]
    return errors
