"""Placement helpers in kfp-kubernetes style: each is `(task, ...) -> task`, one concern a module.

* `nodes.place_on_nodes`: node selector + tolerations.
* `credentials.use_site_credentials` / `use_sites_read_credentials`: Secrets as env.
* `labels.label_placement`: pod labels for site, role and jurisdiction.
* `registry.use_site_registry`: the site's image registry override.

`place_site_task` and `place_coordinator_task` compose them for the DAG.
"""

from __future__ import annotations

from collections.abc import Iterable

from kfp.dsl import PipelineTask

from components.domain.models import Site
from pipelines.placement.credentials import (
    use_signing_key,
    use_site_credentials,
    use_sites_read_credentials,
)
from pipelines.placement.labels import JURISDICTION_LABEL, ROLE_LABEL, SITE_LABEL, label_placement
from pipelines.placement.nodes import place_on_nodes
from pipelines.placement.registry import rewrite_registry, use_site_registry


def place_site_task(task: PipelineTask, site: Site, signing: bool = False) -> PipelineTask:
    """A site task: the site's nodes, labels, image registry and credentials (+ signing key)."""
    place_on_nodes(task, site)
    label_placement(task, site)
    use_site_registry(task, site)
    return use_site_credentials(task, site, signing=signing)


def place_coordinator_task(
    task: PipelineTask, coordinator: Site, read_from: Iterable[Site] = (), signing: bool = False
) -> PipelineTask:
    """A coordinator task: its nodes, labels, registry; `read_from` sites' read credentials;
    with `signing` and a coordinator that names a public key, its signing key (the audit
    chain).

    The coordinator's own bucket (GCS) is reached with workload identity / application-default
    credentials, so no object-store Secret of its own is mounted.
    """
    place_on_nodes(task, coordinator)
    label_placement(task, coordinator)
    use_site_registry(task, coordinator)
    if signing and coordinator.signing is not None:
        use_signing_key(task, coordinator)
    return use_sites_read_credentials(task, read_from)


__all__ = [
    "JURISDICTION_LABEL",
    "ROLE_LABEL",
    "SITE_LABEL",
    "label_placement",
    "place_coordinator_task",
    "place_on_nodes",
    "place_site_task",
    "rewrite_registry",
    "use_site_credentials",
    "use_site_registry",
    "use_sites_read_credentials",
]
