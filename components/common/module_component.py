"""A KFP component whose executor imports its function from the image instead of embedding it.

`dsl.component` embeds the function's whole source in every executor of the compiled YAML,
and kfp 2.13 gives each task with platform config (node selector, secrets) its own executor:
at 100 sites that is 400 copies of the same source. The function lives in an installed,
runtime-safe module (`components/<stage>/entry.py`, importable with `_KFP_RUNTIME=true`), so
the program KFP writes to `ephemeral_component.py` shrinks to one import line. The command
keeps KFP's lightweight-component shape, which the cluster launcher and kfp.local both run.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from kfp import dsl

from components.common.image import FEDPIPE_IMAGE

LAUNCHER = (
    'p="$(mktemp -d)/ephemeral_component.py"; printf "%s" "$0" > "$p"\n'
    '_KFP_RUNTIME=true python3 -m kfp.dsl.executor_main --component_module_path "$p" "$@"\n'
)


def import_program(func: Callable[..., Any]) -> str:
    """The one-line component program: `from <module> import <function>`."""
    if "." not in func.__module__ or func.__name__ != func.__qualname__:
        raise ValueError(
            f"component function {func.__qualname__} must be a top-level function of an "
            f"installed package module, not {func.__module__!r}"
        )
    return f"from {func.__module__} import {func.__name__}\n"


def with_program(component: Any, program: str) -> Any:
    """Make `program` the text KFP writes to `ephemeral_component.py` (returns `component`)."""
    container = component.component_spec.implementation.container
    command = ["sh", "-ec", LAUNCHER, program]
    component.component_spec.implementation.container = dataclasses.replace(
        container, command=command
    )
    return component


def module_component(func: Callable[..., Any], base_image: str = FEDPIPE_IMAGE) -> Any:
    """`dsl.component(func)` (no kfp install, `base_image`), executor = import of `func`."""
    component = dsl.component(base_image=base_image, install_kfp_package=False)(func)
    return with_program(component, import_program(func))
