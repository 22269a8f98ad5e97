"""Schedule a task on its placement's nodes: node selector + tolerations from the site spec."""

from __future__ import annotations

from kfp import kubernetes
from kfp.dsl import PipelineTask

from components.domain.models import Site


def place_on_nodes(task: PipelineTask, site: Site) -> PipelineTask:
    """Add every `site.placement.node_selector` label and toleration to `task`; returns it.

    Labels are added in sorted key order so the compiled YAML does not depend on dict order.
    """
    for key, value in sorted(site.placement.node_selector.items()):
        kubernetes.add_node_selector(task, label_key=key, label_value=value)
    for toleration in site.placement.tolerations:
        kubernetes.add_toleration(
            task,
            key=toleration.key,
            operator=toleration.operator,
            value=toleration.value,
            effect=toleration.effect,
        )
    return task
