"""The site's SecAgg+ steps as typed executors (each writes `ref.json`, the task's artifact).

* `advertise` (inside `validate`, once per run, once the site's data passed): fresh X25519
  pairs for every round of the run, advertised signed with the site's Ed25519 key; the
  private halves and the self-mask seeds stay under `secagg-private/` in the site's own
  bucket. A site whose validation failed advertises nothing (it is in no roster).
* `run_shares` (`shares-<site>`, once per run, after the coordinator's roster): per round,
  check the signed roster and the neighbours' signed advertisements, then seal the Shamir
  shares of the self-mask seed and the masking key for each neighbour (AES-GCM) into the
  site's bucket, where the coordinator's relay reads them.
* masking is export's (`components/export/masked.py`).
* `run_answer` (`answer-<site>-r<N>`): answer the coordinator's signed unmasking request of
  the round, once: self-mask shares of survivors, key shares of dropped sites, never both of
  one site. A refused request (bad signature, another round, both shares of a site, too few
  survivors) fails the task naming why; a site the request lists as dropped (its masked
  update was refused) reveals nothing and abstains.

The coordinator's published objects (rosters, advertisements, relayed shares, requests) come
in as the coordinator task's artifact folder (`exchange.FolderBucket`): a site task needs no
key to the coordinator's bucket.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from components.common.artifact_files import validation_failure
from components.common.create_only import STORE_ERRORS, sse_for_policy
from components.common.site_task import SiteTask, TaskInputError
from components.datasets.io import site_client_factory
from components.domain.models import Site
from components.secagg import exchange, wire
from components.secagg.errors import SecAggError
from components.secagg.rand import RandomBytes, os_random
from components.secagg_stages.common import (
    private_key,
    public_key,
    read_ref,
    site_bucket,
    site_keys,
    sites_of,
    write_ref,
)

ClientFactory = Callable[[], Any]


def _store(task: SiteTask, client_factory: ClientFactory | None) -> exchange.SiteBucket:
    client = (client_factory or site_client_factory(task.site))()
    return site_bucket(task.site, client, sse_for_policy(task.policy, task.site_id))


def _rounds(task: SiteTask) -> int:
    task.require("rounds")
    return int(task.settings.rounds or 0)


def _peers(task: SiteTask, sites_json: str) -> dict[str, Any]:
    """Every member's public key from the compiled specs; this site's must be its own."""
    sites = sites_of(sites_json)
    own = sites.get(task.site_id)
    if own is None or own.signing != task.site.signing:
        raise TaskInputError(
            f"site {task.site_id}: sites_json does not carry this site's own signing key; "
            "refusing to trust its other keys"
        )
    return site_keys(sites)


def _base(task: SiteTask) -> dict[str, Any]:
    return {"site_id": task.site_id, "run_id": task.run_id, "bucket": task.site.object_store.bucket}


def advertise(
    task: SiteTask,
    client_factory: ClientFactory | None = None,
    rand: RandomBytes = os_random,
) -> int:
    """SecAgg+ step 1 (validate calls it once its data passed): fresh round keys for rounds
    1..rounds, advertised signed with the site key; an advertisement already there (an
    earlier attempt of validate) is kept. Returns the rounds advertised."""
    site_key = private_key(task.site)
    store = _store(task, client_factory)
    rounds = _rounds(task)
    for r in range(1, rounds + 1):
        if not store.exists(task.run_id, r, "advertisement.json"):
            exchange.site_keys(store, task.run_id, r, site_key, rand)
    return rounds


def run_shares(
    task: SiteTask,
    *,
    coordinator_json: str,
    sites_json: str,
    validation: str,
    roster: str,
    shares: str,
    client_factory: ClientFactory | None = None,
    rand: RandomBytes = os_random,
) -> dict[str, Any]:
    """Seal this site's shares for its neighbours, every round of the run (a site whose
    validation failed advertised nothing and abstains; one whose object store fails while
    sealing abstains too, naming the error: the relay then excludes it from the run's rounds
    while the others can go on without it)."""
    failure = validation_failure(validation)
    if failure is not None:
        return write_ref(shares, {**_base(task), "status": "abstained", "reason": failure})
    coordinator_public = public_key(Site.parse_raw(coordinator_json))
    peers = _peers(task, sites_json)
    store = _store(task, client_factory)
    published = exchange.FolderBucket(Path(roster))
    counts: dict[str, int] = {}
    for r in range(1, _rounds(task) + 1):
        prefix = exchange.round_prefix(task.run_id, r)
        listed = wire.load_roster(published.blob(prefix + "roster.json").download_as_bytes())
        if task.site_id not in listed.advertisements:
            raise SecAggError(
                f"site {task.site_id}: the coordinator's roster of round {r} leaves this site "
                "out although it advertised keys; refused"
            )
        try:
            counts[str(r)] = exchange.site_share(
                store, published, task.run_id, r, coordinator_public, peers, rand
            )
        except STORE_ERRORS as exc:  # the relay excludes the site, or stops the run
            reason = (
                f"site {task.site_id}: its object store failed while sealing round {r}'s "
                f"shares ({type(exc).__name__}: {exc}); it shares nothing this run"
            )
            return write_ref(shares, {**_base(task), "status": "abstained", "reason": reason})
    return write_ref(shares, {**_base(task), "status": "shared", "shares": counts})


def run_answer(
    task: SiteTask,
    *,
    coordinator_json: str,
    sites_json: str,
    update: str,
    request: str,
    answer: str,
    client_factory: ClientFactory | None = None,
) -> dict[str, Any]:
    """Answer the round's signed unmasking request (once); SecAggError when refused."""
    own = read_ref(update)
    if own.get("status") != "masked":
        reason = own.get("reason") or "nothing masked"
        return write_ref(
            answer,
            {
                **_base(task),
                "status": "abstained",
                "round": task.round_index,
                "reason": f"site {task.site_id} dropped in round {task.round_index}: {reason}",
            },
        )
    coordinator_public = public_key(Site.parse_raw(coordinator_json))
    peers = _peers(task, sites_json)
    r = task.round_index
    published = exchange.FolderBucket(Path(request))
    asked = wire.load_request(
        published.blob(exchange.round_prefix(task.run_id, r) + "request.json").download_as_bytes()
    )
    if task.site_id in asked.dropped:  # its masked update was refused: it answers nothing
        return write_ref(
            answer,
            {
                **_base(task),
                "status": "abstained",
                "round": r,
                "reason": f"site {task.site_id}: the coordinator did not sum its masked update "
                f"in round {r} (listed as dropped); it reveals no share",
            },
        )
    store = _store(task, client_factory)
    exchange.site_answer(
        store, exchange.FolderBucket(Path(request)), task.run_id, r, coordinator_public, peers
    )
    sent = wire.load_response(store.get(task.run_id, r, "answer.json"))
    return write_ref(
        answer,
        {
            **_base(task),
            "status": "answered",
            "round": r,
            "key": exchange.site_key(task.run_id, r, task.site_id, "answer.json"),
            "self_mask_of": sorted(sent.self_mask),
            "mask_key_of": sorted(sent.mask_key),
        },
    )
