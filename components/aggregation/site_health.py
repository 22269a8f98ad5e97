"""Per-site health across rounds and the quarantine decision (pure).

The state is a JSON-ready dict {site: {"scored", "flagged", "consecutive", "quarantined",
"last_reason"}} carried from round to round in the global model's meta (`health` key), so
it also carries across runs that resume from a published model. A site flagged in
`quarantine_after` consecutive scored rounds is quarantined from that round on: its update is
recorded and skipped, with the reason. Quarantine lasts for the rest of the model's lineage
(lifting it is a decision for a person, who can start from an unquarantined version).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from components.aggregation.anomaly import SiteScore

Health = dict[str, dict[str, Any]]


def empty_entry() -> dict[str, Any]:
    return {"scored": 0, "flagged": 0, "consecutive": 0, "quarantined": None, "last_reason": ""}


def history(health: Mapping[str, Mapping[str, Any]]) -> dict[str, tuple[int, int]]:
    """{site: (rounds scored, rounds flagged)}: what `anomaly.score_round` weighs."""
    return {
        site: (int(entry.get("scored", 0)), int(entry.get("flagged", 0)))
        for site, entry in health.items()
    }


def quarantined(health: Mapping[str, Mapping[str, Any]]) -> dict[str, str]:
    """{site: reason} of the sites quarantined in `health`."""
    return {
        site: entry["quarantined"]["reason"]
        for site, entry in sorted(health.items())
        if entry.get("quarantined")
    }


def advance(
    health: Mapping[str, Mapping[str, Any]],
    scores: Iterable[SiteScore],
    round_index: int,
    quarantine_after: int | None,
) -> tuple[Health, dict[str, str]]:
    """(new health, {site: reason} newly quarantined this round) after one round's scores.

    `health` is not modified. quarantine_after None: flags are counted, never acted on."""
    if quarantine_after is not None and quarantine_after < 1:
        raise ValueError(f"quarantine_after must be ≥ 1 round, got {quarantine_after}")
    new: Health = {site: dict(entry) for site, entry in health.items()}
    newly: dict[str, str] = {}
    for score in scores:
        entry = new.setdefault(score.site, empty_entry())
        entry["scored"] += 1
        if score.flagged:
            entry["flagged"] += 1
            entry["consecutive"] += 1
            entry["last_reason"] = score.explanation
        else:
            entry["consecutive"] = 0
        if (
            quarantine_after is not None
            and not entry["quarantined"]
            and entry["consecutive"] >= quarantine_after
        ):
            reason = (
                f"quarantined in round {round_index}: flagged in {entry['consecutive']} "
                f"consecutive rounds (policy quarantine_after={quarantine_after}); last: "
                f"{score.explanation}"
            )
            entry["quarantined"] = {"round": round_index, "reason": reason}
            newly[score.site] = reason
    return new, newly
