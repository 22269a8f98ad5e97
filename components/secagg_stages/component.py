"""KFP declarations of the SecAgg+ stages (wiring only; executors in `executor.py` and
`coordinator.py`).

Site tasks (module components, `entry.py`): `shares`, `answer` (the key advertisement is
validate's, once its data passed); the coordinator's
fan-ins `roster`, `relay`, `request` are generated per federation (`fanin.py`). Every
output is class `secagg_public` (signed public keys, rosters, sealed shares, requests,
answers: nothing of a single update); the private round state never is an artifact (it stays
under `secagg-private/` in the site's bucket).
"""

from components.common.declare import declare_output_classes
from components.common.module_component import module_component
from components.domain.artifact_classes import ArtifactClass
from components.secagg_stages import entry
from components.secagg_stages.fanin import build, site_input

shares = declare_output_classes(
    module_component(entry.shares), {"shares": ArtifactClass.SECAGG_PUBLIC}
)
answer = declare_output_classes(
    module_component(entry.answer), {"answer": ArtifactClass.SECAGG_PUBLIC}
)

__all__ = ["answer", "build", "shares", "site_input"]
