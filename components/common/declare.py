"""Record the residency class of each component output where the compiler finds it.

The class goes into the output's description in the component spec
(`fedpipe.artifact_class=<class>`), so it is visible in the compiled YAML and the
flow-graph extractor reads it back from the built pipeline. An artifact output
with no class is refused here and, if one slips through, is a violation at compile time.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import TypeVar

from components.domain.artifact_classes import ARTIFACT_CLASS_KEY, ArtifactClass

C = TypeVar("C")

_CLASS_RE = re.compile(re.escape(ARTIFACT_CLASS_KEY) + r"=([a-z_]+)")


class UndeclaredArtifactClassError(ValueError):
    """A component output has no (or an unknown) residency class."""


def class_description(cls: ArtifactClass) -> str:
    """The description text that declares `cls` (e.g. "fedpipe.artifact_class=dp_update")."""
    return f"{ARTIFACT_CLASS_KEY}={cls.value}"


def parse_class(description: str | None) -> ArtifactClass | None:
    """The class declared in an output description, or None when there is none/unknown."""
    if not description:
        return None
    match = _CLASS_RE.search(description)
    if match is None:
        return None
    try:
        return ArtifactClass(match.group(1))
    except ValueError:
        return None


def declare_output_classes(component: C, classes: Mapping[str, ArtifactClass]) -> C:
    """Stamp `classes` ({output name: class}) into `component`'s output specs; returns it.

    Raises UndeclaredArtifactClassError naming the component and output when an artifact
    output has no class or `classes` names an artifact output the component does not have.
    Parameter outputs (plain values) take no class: they may never leave their task's
    placement (`pipelines/flows.py` checks that edge by edge).
    """
    from kfp.dsl.types import type_utils

    spec = component.component_spec  # type: ignore[attr-defined]
    outputs = {
        name: out
        for name, out in (spec.outputs or {}).items()
        if not type_utils.is_parameter_type(out.type)
    }
    missing = sorted(set(outputs) - set(classes))
    unknown = sorted(set(classes) - set(outputs))
    if missing or unknown:
        raise UndeclaredArtifactClassError(
            f"component {spec.name}: outputs without a residency class: {missing or '-'}; "
            f"classes for outputs it does not have: {unknown or '-'} "
            f"(declare them in components/<stage>/component.py OUTPUT_CLASSES)"
        )
    for name, cls in classes.items():
        outputs[name].description = class_description(ArtifactClass(cls))
    return component
