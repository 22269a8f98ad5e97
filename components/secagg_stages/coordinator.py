"""The coordinator's SecAgg+ steps as typed executors (fan-in tasks; I/O edge).

* `run_roster` (`roster`, once per run): for each site whose validation passed (validate
  advertised its keys), read every round's signed advertisement from the site's bucket
  (read-only key), verify them against the
  sites' Ed25519 keys, draw the neighbour graph (k, t from the compiled settings and the
  number of advertising sites) and publish the signed roster create-only to the
  coordinator's bucket; the artifact is a mirror of what was published (the sites read it).
* `run_relay` (`relay`, once per run): copy every sealed share from its sender's bucket into
  the receiver's inbox in the coordinator's bucket; the artifact mirrors it. A roster site
  that shared nothing is excluded from the round (signed `excluded.json`) when the others
  can go on without it (`graph.exclusion_problems`), else the run stops here.
* `run_request` (`request-r<N>`): the survivors are the sites whose masked update is in their
  bucket, whose export says `masked` and passes the checks of a masked update (residency rule,
  signed manifest, policy, version, ε, the site's admission of the run and its export record:
  `verify.py`; one that fails counts as dropped); fewer than the quorum fails the round before anyone
  reveals a share. Publishes the signed unmasking request (survivors, dropped); the artifact
  mirrors it. The unmasking itself is aggregate's (`components/aggregation/secure.py`).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from components.common.artifact_files import REF_FILE, validation_failure, write_json
from components.common.config_digest import check_config
from components.common.create_only import STORE_ERRORS
from components.common.global_model import read_global_model
from components.common.object_store import coordinator_gcs_client, site_minio_client
from components.domain.canonical import sha256_hex
from components.domain.models import Policy, Site
from components.domain.run_id import effective_run_id
from components.secagg import exchange, wire
from components.secagg.errors import SecAggError
from components.secagg.graph import exclusion_problems
from components.secagg.rand import RandomBytes, os_random
from components.secagg.settings import SecAggSettings, vector_length
from components.secagg.unmask import make_request
from components.secagg_stages.common import (
    private_key,
    read_ref,
    site_bucket,
    site_keys,
    sites_of,
)
from components.secagg_stages.verify import masked_residency_rule, site_records, verify_masked

log = logging.getLogger(__name__)


class _Config:
    """The coordinator's checked inputs (compiled configuration digest, run id, keys)."""

    def __init__(
        self,
        *,
        task: str,
        coordinator_json: str,
        sites_json: str,
        config_digest: str,
        run_id: str,
        kfp_job_id: str,
        secagg_json: str,
        policies_json: str,
    ) -> None:
        check_config(
            config_digest,
            task=task,
            coordinator_json=coordinator_json,
            sites_json=sites_json,
            policies_json=policies_json,
        )
        self.coordinator = Site.parse_raw(coordinator_json)
        self.sites = sites_of(sites_json)
        by_id = {k: Policy.parse_obj(v) for k, v in json.loads(policies_json).items()}
        self.policies = {sid: by_id[s.policy] for sid, s in self.sites.items() if s.policy in by_id}
        governing = [*self.policies.values()]
        if self.coordinator.policy in by_id:
            governing.append(by_id[self.coordinator.policy])
        # the strictest aggregation.min_sites of any governing policy (the compiled quorum)
        self.quorum = max((p.aggregation.min_sites for p in governing), default=2)
        self.run_id = effective_run_id(run_id, kfp_job_id, task)
        self.settings = SecAggSettings.from_json(secagg_json)
        self.keys = site_keys(self.sites)

    def bucket(self, gcs: Any = None) -> Any:
        client = gcs if gcs is not None else coordinator_gcs_client(self.coordinator)
        return client.bucket(self.coordinator.object_store.bucket)

    def stores(self, readers: Mapping[str, Any] | None = None) -> dict[str, exchange.SiteBucket]:
        return {
            sid: site_bucket(site, (readers or {}).get(sid) or site_minio_client(site))
            for sid, site in sorted(self.sites.items())
        }


def _mirror(bucket: Any, run_id: str, folder: str, body: dict[str, Any]) -> dict[str, Any]:
    Path(folder).mkdir(parents=True, exist_ok=True)
    body = {**body, "objects": exchange.mirror(bucket, run_id, folder)}
    write_json(folder, REF_FILE, body)
    return body


def run_roster(
    *,
    coordinator_json: str,
    sites_json: str,
    policies_json: str,
    config_digest: str,
    run_id: str,
    kfp_job_id: str,
    rounds: int,
    secagg_json: str,
    validations: Mapping[str, str],
    roster: str,
    readers: Mapping[str, Any] | None = None,
    gcs: Any = None,
    rand: RandomBytes = os_random,
) -> dict[str, Any]:
    """Publish the signed roster of every round; returns the mirror's ref."""
    cfg = _Config(
        task="roster",
        coordinator_json=coordinator_json,
        sites_json=sites_json,
        config_digest=config_digest,
        run_id=run_id,
        kfp_job_id=kfp_job_id,
        secagg_json=secagg_json,
        policies_json=policies_json,
    )
    failures = {sid: validation_failure(folder) for sid, folder in validations.items()}
    absent = {sid: str(why) for sid, why in failures.items() if why is not None}
    stores = {
        sid: s for sid, s in cfg.stores(readers).items() if sid in failures and sid not in absent
    }
    bucket = cfg.bucket(gcs)
    coordinator_key = private_key(cfg.coordinator)
    rosters: dict[str, Any] = {}
    for r in range(1, rounds + 1):
        k, t = cfg.settings.graph(len(stores))
        listed = exchange.coordinator_roster(
            bucket, stores, cfg.run_id, r, cfg.keys, k, t, coordinator_key, rand
        )
        missing = sorted(set(stores) - set(listed))
        if missing:
            raise SecAggError(
                f"round {r}: site(s) {', '.join(missing)} passed validation but no "
                "advertisement of theirs is in their bucket; the run stops"
            )
        rosters[str(r)] = {"sites": listed, "neighbours": k, "threshold": t}
    return _mirror(
        bucket,
        cfg.run_id,
        roster,
        {"status": "published", "run_id": cfg.run_id, "rosters": rosters, "absent": absent},
    )


def run_relay(
    *,
    coordinator_json: str,
    sites_json: str,
    policies_json: str,
    config_digest: str,
    run_id: str,
    kfp_job_id: str,
    rounds: int,
    secagg_json: str,
    shares: Mapping[str, str],
    relay: str,
    readers: Mapping[str, Any] | None = None,
    gcs: Any = None,
) -> dict[str, Any]:
    """Relay every round's sealed shares into the receivers' inboxes; returns the ref.

    A roster site that shared nothing is excluded from the round (a signed `excluded.json`
    beside the roster, its reason in the ref's `excluded`): no one masks with it, no one
    holds its shares. That holds only while the quorum, 2 and t sites remain and every
    remaining site keeps t live holders of its shares (`graph.exclusion_problems`); else
    SecAggError, naming the silent sites and what no longer holds, and the run stops."""
    cfg = _Config(
        task="relay",
        coordinator_json=coordinator_json,
        sites_json=sites_json,
        config_digest=config_digest,
        run_id=run_id,
        kfp_job_id=kfp_job_id,
        secagg_json=secagg_json,
        policies_json=policies_json,
    )
    bucket = cfg.bucket(gcs)
    stores = cfg.stores(readers)
    refs = {sid: read_ref(folder) for sid, folder in shares.items()}
    relayed: dict[str, int] = {}
    excluded: dict[str, dict[str, str]] = {}
    for r in range(1, rounds + 1):
        prefix = exchange.round_prefix(cfg.run_id, r)
        listed = wire.load_roster(bucket.blob(prefix + "roster.json").download_as_bytes())
        silent = {
            s: "shared nothing after the roster: "
            + str(refs.get(s, {}).get("reason") or refs.get(s, {}).get("status") or "no shares")
            for s in listed.sites
            if refs.get(s, {}).get("status") != "shared"
        }
        if silent:
            problems = exclusion_problems(listed, silent, cfg.quorum)
            if problems:
                raise SecAggError(
                    f"round {r}: site(s) {', '.join(sorted(silent))} are in the roster but "
                    f"shared nothing ({'; '.join(silent[s] for s in sorted(silent))}); the "
                    "round cannot go on without them: "
                    + "; ".join(problems)
                    + ". The run stops here"
                )
            exchange.coordinator_exclude(
                bucket, cfg.run_id, r, silent, private_key(cfg.coordinator)
            )
            excluded[str(r)] = dict(sorted(silent.items()))
            log.warning("round %d: excluded %s (shared nothing)", r, sorted(silent))
        relayed[str(r)] = exchange.coordinator_relay(bucket, stores, cfg.run_id, r)
    return _mirror(
        bucket,
        cfg.run_id,
        relay,
        {"status": "relayed", "run_id": cfg.run_id, "shares": relayed, "excluded": excluded},
    )


def run_request(
    *,
    coordinator_json: str,
    sites_json: str,
    policies_json: str,
    config_digest: str,
    run_id: str,
    kfp_job_id: str,
    round_index: int,
    min_sites: int,
    secagg_json: str,
    previous_model: str,
    updates: Mapping[str, str],
    request: str,
    readers: Mapping[str, Any] | None = None,
    gcs: Any = None,
) -> dict[str, Any]:
    """Name survivors and dropped sites in a signed request; SecAggError when fewer than
    the quorum (and never fewer than 2) masked their update: nobody reveals a share then."""
    cfg = _Config(
        task=f"request round {round_index}",
        coordinator_json=coordinator_json,
        sites_json=sites_json,
        config_digest=config_digest,
        run_id=run_id,
        kfp_job_id=kfp_job_id,
        secagg_json=secagg_json,
        policies_json=policies_json,
    )
    r = round_index
    bucket = cfg.bucket(gcs)
    stores = cfg.stores(readers)
    listed = exchange.round_roster(bucket, cfg.run_id, r)
    previous = read_global_model(previous_model)
    length = vector_length(previous.tensors)
    survivors, dropped = [], {}
    for sid in listed.members:
        ref = read_ref(updates[sid]) if sid in updates else {"reason": "no export"}
        if ref.get("status") != "masked":
            dropped[sid] = str(ref.get("reason") or "nothing masked")
            continue
        try:  # a refused masked update counts as dropped: its pairwise masks are recovered
            site, policy = cfg.sites[sid], cfg.policies[sid]
            masked_residency_rule(site, policy, cfg.coordinator)
            data = stores[sid].get(cfg.run_id, r, "masked.bin")
            wire.load_masked(data, length, cfg.settings.modulus_bits, f"masked update of {sid}")
            verify_masked(
                ref,
                data,
                site=site,
                policy=policy,
                run_id=cfg.run_id,
                round_index=r,
                global_version=previous.version,
            )
            site_records(
                stores[sid].client,
                ref,
                site=site,
                policy=policy,
                run_id=cfg.run_id,
                round_index=r,
                manifest_sha256=sha256_hex(data),
            )
        except (SecAggError, KeyError, *STORE_ERRORS) as exc:
            dropped[sid] = f"refused: {exc}"
            continue
        survivors.append(sid)
    need = max(min_sites, 2, listed.threshold)
    if len(survivors) < need:
        raise SecAggError(
            f"round {r}: only {len(survivors)} site(s) masked their update "
            f"({', '.join(survivors) or 'none'}); secure aggregation needs {need} (quorum "
            f"{min_sites}, threshold t = {listed.threshold}); dropped: "
            + "; ".join(f"{s}: {why}" for s, why in sorted(dropped.items()))
            + ". The round fails and no share is requested"
        )
    signed = make_request(listed, survivors, private_key(cfg.coordinator))
    exchange.gcs_put(
        bucket, exchange.round_prefix(cfg.run_id, r) + "request.json", wire.dump_request(signed)
    )
    log.info("round %d: survivors %s, dropped %s", r, survivors, sorted(dropped))
    return _mirror(
        bucket,
        cfg.run_id,
        request,
        {
            "status": "requested",
            "run_id": cfg.run_id,
            "round": r,
            "survivors": survivors,
            "dropped": dict(sorted(dropped.items())),
            "excluded": list(listed.excluded),
        },
    )
