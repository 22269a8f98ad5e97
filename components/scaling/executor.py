"""`scaling` executor: the coordinator's half of the `federated_zscore` statistics round.

Reads each site's `ref.json` (an abstaining site is named with its reason), then each
released site's statistics from that site's bucket with the coordinator's read-only key
(`stats/`, class `feature_stats`, where the site's policy lets it reach the coordinator),
combines them (`components.datasets.federated_stats.combine`) and publishes
`stats/<run>/global.json` create-only to the coordinator's bucket; fewer than `min_sites`
releases stop the run before anyone trains (`StatsError`, naming every missing site). Writes
the published statistics to the `scaling` artifact (`global.json`).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from components.common.artifact_files import REF_FILE, write_json
from components.common.config_digest import check_config
from components.common.object_store import coordinator_gcs_client, site_minio_client
from components.datasets.federated_stats import stats_ranges
from components.datasets.stats_exchange import (
    Collected,
    collect_site_statistics,
    publish_global_statistics,
)
from components.domain.contract import DataContract
from components.domain.models import Site
from components.domain.run_id import effective_run_id

log = logging.getLogger(__name__)
GLOBAL_FILE = "global.json"


def _ref(folder: str) -> dict[str, Any]:
    try:
        body = json.loads((Path(folder) / REF_FILE).read_text())
    except (OSError, ValueError) as exc:
        return {"status": "abstained", "reason": f"stats reference unreadable ({exc})"}
    return body if isinstance(body, dict) else {"status": "abstained", "reason": "not an object"}


def run(
    *,
    coordinator_json: str,
    sites_json: str,
    contract_json: str,
    config_digest: str,
    run_id: str,
    kfp_job_id: str,
    min_sites: int,
    stats: Mapping[str, str],
    scaling: str,
    readers: Mapping[str, Any] | None = None,
    gcs: Any = None,
) -> dict[str, Any]:
    """Combine and publish; returns the published statistics (`readers` {site: client} and
    `gcs` replace the clients built from the specs and secrets, in tests)."""
    check_config(
        config_digest,
        task="scaling",
        coordinator_json=coordinator_json,
        sites_json=sites_json,
        contract_json=contract_json,
    )
    contract = DataContract.parse_raw(contract_json)
    coordinator = Site.parse_raw(coordinator_json)
    sites = {sid: Site.parse_obj(body) for sid, body in json.loads(sites_json).items()}
    run_name = effective_run_id(run_id, kfp_job_id, "scaling")
    missing: dict[str, str] = {}
    to_read: dict[str, tuple[Any, str]] = {}
    for site_id, folder in stats.items():
        ref = _ref(folder)
        if ref.get("status") not in ("released", "reused") or ref.get("site_id") != site_id:
            missing[site_id] = str(ref.get("reason") or "no release")
            continue
        client = (readers or {}).get(site_id) or site_minio_client(sites[site_id])
        to_read[site_id] = (client, sites[site_id].object_store.bucket)
    collected = collect_site_statistics(to_read, run_name)
    collected = Collected(collected.stats, {**missing, **collected.missing})
    for site_id, why in sorted(collected.missing.items()):
        log.warning("site %s released no feature statistics: %s", site_id, why)
    client = gcs if gcs is not None else coordinator_gcs_client(coordinator)
    published = publish_global_statistics(
        client,
        coordinator.object_store.bucket,
        run_name,
        collected,
        stats_ranges(contract),
        min_sites,
    )
    body = json.loads(published.to_json())
    write_json(scaling, GLOBAL_FILE, body)
    log.info("global feature statistics from %d site(s): %s", len(published.sites), published.sites)
    return body
