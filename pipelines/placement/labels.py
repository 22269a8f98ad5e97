"""Pod labels that name a task's placement (site, role, jurisdiction).

`SITE_LABEL` is also what the flow-graph extractor reads back from the compiled platform spec
to know where each task runs: a task without it has an unknown placement (a violation).
"""

from __future__ import annotations

from kfp import kubernetes
from kfp.dsl import PipelineTask

from pipelines.config.models import Site

SITE_LABEL = "fedpipe.dev/site"
ROLE_LABEL = "fedpipe.dev/role"
JURISDICTION_LABEL = "fedpipe.dev/jurisdiction"


def label_placement(task: PipelineTask, site: Site) -> PipelineTask:
    """Label `task`'s pod with the site id, its role and its jurisdiction; returns it."""
    kubernetes.add_pod_label(task, SITE_LABEL, site.id)
    kubernetes.add_pod_label(task, ROLE_LABEL, site.role)
    kubernetes.add_pod_label(task, JURISDICTION_LABEL, site.jurisdiction)
    return task
