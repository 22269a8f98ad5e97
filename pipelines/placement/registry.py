"""A site's `image_registry` override: rewrite the registry part of that site's task images."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextvars import ContextVar

from kfp.dsl import PipelineTask

from components.domain.models import Site


def split_registry(image: str) -> tuple[str | None, str]:
    """(registry, repository[:tag|@digest]) of an image reference; registry None if implicit.

    The first path component is a registry when it contains '.' or ':' or is 'localhost'
    (Docker's rule): "ghcr.io/fedpipe/fedpipe:0.1" -> ("ghcr.io", "fedpipe/fedpipe:0.1"),
    "python:3.11" -> (None, "python:3.11").
    """
    first, sep, rest = image.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost"):
        return first, rest
    return None, image


def rewrite_registry(image: str, registry: str) -> str:
    """`image` pulled from `registry` instead (a host or host/path mirror prefix).

    "ghcr.io/fedpipe/fedpipe:0.1" with "registry.example.org/mirror" ->
    "registry.example.org/mirror/fedpipe/fedpipe:0.1".
    """
    registry = registry.strip().rstrip("/")
    if not registry or "://" in registry:
        raise ValueError(f"image_registry {registry!r}: give host[:port][/path] without a scheme")
    _, repository = split_registry(image)
    return f"{registry}/{repository}"


# The image of every placed task while a compile with `--image` builds the pipeline (None: the
# components' declared FEDPIPE_IMAGE).
_IMAGE: ContextVar[str | None] = ContextVar("fedpipe_image", default=None)


@contextlib.contextmanager
def pipeline_image(image: str | None) -> Iterator[None]:
    """Within the block, `use_site_registry` gives every task `image` (None: keep declared)."""
    token = _IMAGE.set(image)
    try:
        yield
    finally:
        _IMAGE.reset(token)


def use_site_registry(task: PipelineTask, site: Site) -> PipelineTask:
    """Set `task`'s image (the `pipeline_image` one, if any), pulled from `site.image_registry`
    when the site sets one (tag or digest kept); returns the task."""
    if task.container_spec is None:
        return task
    image = _IMAGE.get() or task.container_spec.image
    if site.image_registry:
        image = rewrite_registry(image, site.image_registry)
    task.container_spec.image = image
    return task


def site_image(site: Site) -> str:
    """The image reference `site`'s tasks run in this compile (what `use_site_registry` sets on
    a task declared with `FEDPIPE_IMAGE`): validate checks it against the site's allowlist."""
    from components.common.image import FEDPIPE_IMAGE

    image = _IMAGE.get() or FEDPIPE_IMAGE
    return rewrite_registry(image, site.image_registry) if site.image_registry else image
