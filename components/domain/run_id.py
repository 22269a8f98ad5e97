"""The effective run id of a task: the `run_id` pipeline parameter, else the KFP job id (pure).

Every task that names objects by run (`updates/<run>/…`, `local-models/<run>/…`,
`models/<run>/…`, the privacy ledger) takes its run id from `effective_run_id`, which also
refuses ids that are unsafe as one object-key segment.
"""

from __future__ import annotations

import re

RUN_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


class RunIdError(ValueError):
    """A run id that is empty or not usable as one object-key segment (names the task)."""


def effective_run_id(run_id: str, kfp_job_id: str, task: str) -> str:
    """`run_id`, or `kfp_job_id` when it is empty; `task` (e.g. `site hospital-a`) names the
    caller in the error. RunIdError when both are empty or the id has characters other than
    [A-Za-z0-9._-], starts with `.`/`-`/`_`, contains `..` or exceeds 128 characters."""
    value = run_id or kfp_job_id
    if not value:
        raise RunIdError(f"{task}: both run_id and kfp_job_id are empty")
    if not RUN_ID_PATTERN.fullmatch(value) or ".." in value:
        raise RunIdError(
            f"{task}: run id {value!r} is not usable in object keys "
            "([A-Za-z0-9._-], at most 128 characters)"
        )
    return value
