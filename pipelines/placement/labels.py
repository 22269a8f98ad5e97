"""Pod labels that name a task's placement (site, role, jurisdiction).

`SITE_LABEL` is also what the flow-graph extractor reads back from the compiled platform spec
to know where each task runs: a task without it has an unknown placement (a violation).
"""

from __future__ import annotations

from google.protobuf import json_format
from kfp.dsl import PipelineTask
from kfp.kubernetes import common

from components.domain.models import Site

SITE_LABEL = "fedpipe.dev/site"
ROLE_LABEL = "fedpipe.dev/role"
JURISDICTION_LABEL = "fedpipe.dev/jurisdiction"


def placement_labels(site: Site) -> dict[str, str]:
    """{label: value} naming the site, its role and its jurisdiction."""
    return {SITE_LABEL: site.id, ROLE_LABEL: site.role, JURISDICTION_LABEL: site.jurisdiction}


def label_placement(task: PipelineTask, site: Site) -> PipelineTask:
    """Label `task`'s pod with the site id, its role and its jurisdiction; returns it.

    Same result as one `kubernetes.add_pod_label` per label, in one pass over the config.
    """
    msg = common.get_existing_kubernetes_config_as_message(task)
    for key, value in placement_labels(site).items():
        msg.pod_metadata.labels[key] = value
    task.platform_config["kubernetes"] = json_format.MessageToDict(msg)
    return task
