"""The artifact flow graph of a built pipeline: `FlowEdge`s for the residency checker (pure).

Read from the pipeline spec and its Kubernetes platform spec as plain dicts (the two
documents of the compiled YAML, or `json_format.MessageToDict` of the built pipeline), so
what is checked is exactly what ships:

* placement of a task = the `fedpipe.dev/site` pod label of its executor; a task without
  one gets the placement `UNPLACED` (not a site, so any edge touching it is denied);
* class of an output = `fedpipe.artifact_class=<class>` in its output description; none
  gives `artifact_class=None` (denied by default);
* one edge per (producer output, consumer task input), sorted; parameter outputs consumed
  by another task (`taskOutputParameter`) are edges of kind "parameter" (no class).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from components.common.declare import parse_class
from pipelines.placement.labels import SITE_LABEL
from pipelines.residency.checker import FlowEdge

UNPLACED = "<unplaced>"


def kubernetes_executors(platform_spec: Mapping[str, Any] | None) -> dict[str, Any]:
    """`platforms.kubernetes.deploymentSpec.executors` of a platform spec ({} when absent)."""
    spec = platform_spec or {}
    return dict(
        spec.get("platforms", {}).get("kubernetes", {}).get("deploymentSpec", {}).get("executors")
        or {}
    )


def task_placements(
    pipeline_spec: Mapping[str, Any], platform_spec: Mapping[str, Any] | None
) -> dict[str, str]:
    """{task name: site id from its executor's pod label, or UNPLACED} for the root DAG."""
    components = pipeline_spec.get("components", {})
    executors = kubernetes_executors(platform_spec)
    placements = {}
    for name, task in pipeline_spec["root"]["dag"]["tasks"].items():
        component = components.get(task["componentRef"]["name"], {})
        config = executors.get(component.get("executorLabel", ""), {})
        labels = config.get("podMetadata", {}).get("labels", {})
        placements[name] = labels.get(SITE_LABEL, UNPLACED)
    return placements


def flow_edges(
    pipeline_spec: Mapping[str, Any], platform_spec: Mapping[str, Any] | None
) -> list[FlowEdge]:
    """Every artifact edge of the root DAG with placements and classes (see module doc)."""
    components = pipeline_spec.get("components", {})
    tasks = pipeline_spec["root"]["dag"]["tasks"]
    placements = task_placements(pipeline_spec, platform_spec)
    edges = []
    for consumer, task in tasks.items():
        for ref in task.get("inputs", {}).get("parameters", {}).values():
            source = ref.get("taskOutputParameter")
            if source is not None:
                producer = source["producerTask"]
                edges.append(
                    FlowEdge(
                        task=producer,
                        artifact=source["outputParameterKey"],
                        artifact_class=None,
                        source=placements[producer],
                        dest_task=consumer,
                        dest=placements[consumer],
                        kind="parameter",
                    )
                )
        for ref in task.get("inputs", {}).get("artifacts", {}).values():
            source = ref.get("taskOutputArtifact")
            if source is None:
                continue
            producer = source["producerTask"]
            output = source["outputArtifactKey"]
            component = components.get(tasks[producer]["componentRef"]["name"], {})
            outputs = component.get("outputDefinitions", {}).get("artifacts", {})
            cls = parse_class(outputs.get(output, {}).get("description"))
            edges.append(
                FlowEdge(
                    task=producer,
                    artifact=output,
                    artifact_class=cls.value if cls is not None else None,
                    source=placements[producer],
                    dest_task=consumer,
                    dest=placements[consumer],
                )
            )
    return sorted(edges, key=lambda e: (e.task, e.artifact, e.dest_task))
