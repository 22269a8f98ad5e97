"""The coordinator's run-level audit records: initialize (the run's quorum decision and the
starting model) and report (the digests of what the report task wrote).

The bodies are pure; `coordinator_task_log` is the edge (the coordinator's chain in its GCS
bucket, signed with its `SIGNING_KEY`), used by initialize, aggregate and report alike.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

INITIALIZE = "initialize"
REPORT = "report"


def site_records(summaries: Mapping[str, Mapping[str, Any] | None]) -> dict[str, dict[str, str]]:
    """{site: {"admission": hash, "validation": hash}} from the validation summaries (their
    `audit` field, written by validate beside the records it signed); a summary without it,
    or with a value that is not a sha256 hex digest, gives nothing for that record."""
    out: dict[str, dict[str, str]] = {}
    for site, summary in sorted(summaries.items()):
        audit = (summary or {}).get("audit")
        if not isinstance(audit, Mapping):
            continue
        found = {
            kind: str(audit[kind]).lower()
            for kind in ("admission", "validation")
            if _is_sha256(audit.get(kind))
        }
        if found:
            out[site] = found
    return out


def _is_sha256(value: Any) -> bool:
    return (
        isinstance(value, str)
        and len(value) == 64
        and all(c in "0123456789abcdef" for c in value.lower())
    )


def record_refs(records: Mapping[str, Mapping[str, str]]) -> list[str]:
    """The hashes of `site_records`, in site order (admission, then validation): the refs of
    the initialize record."""
    return [
        records[site][kind]
        for site in sorted(records)
        for kind in ("admission", "validation")
        if kind in records[site]
    ]


def initialize_body(
    *,
    passed: Sequence[str],
    abstained: Mapping[str, str],
    min_sites: int,
    version: int | None = None,
    model_sha256: str | None = None,
    source: str | None = None,
    refused: str | None = None,
    records: Mapping[str, Mapping[str, str]] | None = None,
) -> dict[str, Any]:
    """The initialize record: which sites take part and which abstain (with their reasons),
    the quorum it needed, and the starting model's version and sha256 (or, when the quorum
    cannot hold, `refused` with the reason and no model); `records`: each site's admission
    and validation record hashes its decision rested on (`site_records`; the record's refs
    are the same hashes, `record_refs`)."""
    decision = "refuse" if refused is not None else "accept"
    if refused is not None:
        summary = f"run refused before training: {refused}"
    else:
        summary = (
            f"global model v{version} ({source}), sha256 {str(model_sha256)[:12]}…; "
            f"{len(passed)} site(s) take part, quorum {max(1, min_sites)}"
        )
    return {
        "round": 0,
        "decision": decision,
        "taking_part": sorted(passed),
        "abstained": dict(sorted(abstained.items())),
        "min_sites": max(1, min_sites),
        "version": version,
        "model_sha256": model_sha256,
        "source": source,
        "reason": refused,
        "site_records": {
            site: dict(sorted(r.items())) for site, r in sorted((records or {}).items())
        },
        "summary": summary,
    }


def report_body(
    *, rounds: int, final_version: int | None, digests: Mapping[str, str]
) -> dict[str, Any]:
    """The report record: the sha256 of every file the report task wrote ({name: hex})."""
    names = ", ".join(f"{n} {d[:12]}…" for n, d in sorted(digests.items()))
    return {
        "round": rounds,
        "final_version": final_version,
        "sha256": dict(sorted(digests.items())),
        "summary": f"report over {rounds} round(s), final model v{final_version}: {names}",
    }


def coordinator_task_log(coordinator: Any, run_id: str) -> Any:
    """The coordinator's event log (`components.audit.events.EventLog`) for `run_id`, when
    its site spec names a signing key (the task must then hold `SIGNING_KEY`); else None."""
    if coordinator.signing is None:
        return None
    from components.audit.events import coordinator_log
    from components.common.object_store import coordinator_gcs_client
    from components.common.secrets import site_secret

    bucket = coordinator_gcs_client(coordinator).bucket(coordinator.object_store.bucket)
    return coordinator_log(bucket, run_id, site_secret(coordinator.id, "SIGNING_KEY"))
