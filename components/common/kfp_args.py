"""Turn a component's arguments into what its executor takes (components/CONTRACT.md)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def plain_arguments(arguments: Mapping[str, Any]) -> dict[str, Any]:
    """{name: value}: a KFP artifact (anything with `.path`) becomes its local path; plain values
    stay. Called in a component body as `run(**plain_arguments(arguments))` with
    `arguments = dict(locals())` taken first, so names always match the component signature.
    """
    return {name: getattr(value, "path", value) for name, value in arguments.items()}
