"""Pipeline task names: one format rule and its inverse.

The DAG (`pipelines.dag`) names its tasks with `task_name`, the local runner reads them back
with `parse_task_name`; a site id may contain stage words (`hospital-trainee`, `evaluate-lab`),
so the stage is only ever the first word and the round only ever the `-rN` suffix.

    initialize                       coordinator, once
    validate-<site>                  site, once per run
    stats-<site>                     site, once per run (federated_zscore contracts only)
    scaling                          coordinator, once (federated_zscore contracts only)
    shares-<site>                    site, once per run (aggregation.protection secagg only)
    roster, relay                    coordinator, once (secagg only)
    train-<site>-r<N>                site, per round (also export, evaluate; answer: secagg)
    aggregate-r<N>                   coordinator, per round (also request: secagg)
    report                           coordinator, once
"""

from __future__ import annotations

import re
from dataclasses import dataclass

STAGES = (
    "initialize",
    "validate",
    "stats",
    "scaling",
    "roster",
    "shares",
    "relay",
    "train",
    "export",
    "request",
    "answer",
    "aggregate",
    "evaluate",
    "report",
)
ONCE_SITE_STAGES = frozenset({"validate", "stats", "shares"})
ONCE_COORDINATOR_STAGES = frozenset({"initialize", "scaling", "roster", "relay", "report"})
SITE_ROUND_STAGES = frozenset({"train", "export", "answer", "evaluate"})
COORDINATOR_ROUND_STAGES = frozenset({"request", "aggregate"})
_ROUND = re.compile(r"-r(?P<round>[1-9][0-9]*)$")


@dataclass(frozen=True)
class TaskName:
    """What a task name says: stage, site id (None for coordinator tasks), round (or None)."""

    stage: str
    site_id: str | None
    round_index: int | None


def task_name(stage: str, site_id: str | None = None, round_index: int | None = None) -> str:
    """The task name of `stage` at `site_id` in round `round_index` (the table above).

    ValueError when the combination is not one the DAG builds."""
    if stage not in STAGES:
        raise ValueError(f"unknown stage {stage!r}; stages: {', '.join(STAGES)}")
    expects_site = stage in ONCE_SITE_STAGES or stage in SITE_ROUND_STAGES
    expects_round = stage in COORDINATOR_ROUND_STAGES or stage in SITE_ROUND_STAGES
    if expects_site != (site_id is not None) or expects_round != (round_index is not None):
        raise ValueError(
            f"stage {stage}: site {'required' if expects_site else 'not allowed'}, "
            f"round {'required' if expects_round else 'not allowed'}"
        )
    parts = [stage]
    if site_id is not None:
        parts.append(site_id)
    if round_index is not None:
        parts.append(f"r{round_index}")
    return "-".join(parts)


def parse_task_name(name: str) -> TaskName | None:
    """The inverse of `task_name`; None for a name it does not produce."""
    stage, _, rest = name.partition("-")
    if stage not in STAGES:
        return None
    if stage in ONCE_COORDINATOR_STAGES:
        return TaskName(stage, None, None) if not rest else None
    if stage in ONCE_SITE_STAGES:
        return TaskName(stage, rest, None) if rest else None
    match = _ROUND.search("-" + rest)
    if match is None:
        return None
    round_index = int(match.group("round"))
    if stage in COORDINATOR_ROUND_STAGES:
        return TaskName(stage, None, round_index) if match.start() == 0 else None
    site = ("-" + rest)[1 : match.start()]
    return TaskName(stage, site, round_index) if site else None
