"""Strict offline validation against the official Kubernetes OpenAPI schemas
(`kubernetes-validate`, bundled schemas; no cluster needed), plus the name and label syntax
the schemas leave to the API server (`names`)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from pipelines.deploy import KUBERNETES_VERSION
from pipelines.deploy.names import name_errors


def object_name(obj: dict[str, Any]) -> str:
    """`Kind/namespace/name` of an object, for messages."""
    meta = obj.get("metadata", {})
    where = f"{meta['namespace']}/" if meta.get("namespace") else ""
    return f"{obj.get('kind', '?')}/{where}{meta.get('name', '?')}"


def validation_errors(
    objects: Iterable[dict[str, Any]], version: str = KUBERNETES_VERSION
) -> list[str]:
    """One line per problem: strict schema validation (unknown fields included), then names and
    labels; [] if none."""
    import kubernetes_validate

    errors = []
    for obj in objects:
        try:
            kubernetes_validate.validate(obj, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            path = ".".join(str(p) for p in exc.path) or "<root>"
            errors.append(f"{object_name(obj)}: {path}: {exc.message}")
        except kubernetes_validate.SchemaNotFoundError as exc:
            errors.append(f"{object_name(obj)}: no schema for Kubernetes {version}: {exc}")
        errors += [f"{object_name(obj)}: {e}" for e in name_errors(obj)]
    return errors
