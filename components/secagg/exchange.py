"""SecAgg+ through object stores by prefix: what each party writes where (I/O edge).

Every object is written create-only, so a step that ran cannot be rerun with other values
(in particular a site never answers two different unmasking requests for one round: its
answer and the state recording what it revealed exist once).

* A site's own bucket (S3/MinIO), prefix `secagg/<run>/round-NNNN/<site>/`:
  `advertisement.json`, `shares/<receiver>.json` (sealed for the receiver), `masked.bin` (the
  masked words: what export publishes), `answer.json`; and under its own top-level prefix
  `secagg-private/<run>/round-NNNN/<site>/`: `state-<step>.json` (its private round keys,
  self-mask seed and held shares: never leaves the bucket, SSE per policy; the coordinator's
  read-only identity may read `secagg/` but not `secagg-private/`, `pipelines/access/rules.py`).
* The coordinator's bucket (GCS), prefix `secagg/<run>/round-NNNN/`: `advertisements.json`
  (every verified advertisement, so sites never read each other's buckets), `roster.json`
  (signed), `inbox/<receiver>/<sender>.json` (sealed shares relayed), `request.json` (signed).

In a pipeline the sites do not read the coordinator's bucket: the coordinator's tasks mirror
what they published (`mirror`) into their output artifact, and a site's task reads it from
that folder (`FolderBucket`, the same `blob`/`list_blobs` calls).

The coordinator reads only what a site published (advertisement, shares, masked words,
answer), with the read-only key the site's policy allows; a site reads only the coordinator's
bucket and its own.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from components.common.create_only import put_create_only
from components.domain.canonical import canonical_dumps
from components.secagg import wire
from components.secagg.errors import SecAggError
from components.secagg.graph import Roster, apply_exclusion, make_exclusion, make_roster
from components.secagg.keys import Advertisement
from components.secagg.rand import RandomBytes, os_random
from components.secagg.site import SiteSession
from components.secagg.unmask import make_request, remove_masks

STEPS = ("keys", "shared", "masked", "answered")
PUBLIC_ROOT = "secagg/"
PRIVATE_ROOT = "secagg-private/"


def round_prefix(run_id: str, round_: int) -> str:
    return f"{PUBLIC_ROOT}{run_id}/round-{round_:04d}/"


def site_prefix(run_id: str, round_: int, site_id: str) -> str:
    return f"{round_prefix(run_id, round_)}{site_id}/"


def site_key(run_id: str, round_: int, site_id: str, name: str) -> str:
    """The object key of `name` in the site's bucket: round state (`state-*`) under the
    private prefix, everything else under the public one."""
    if name.startswith("state-"):
        return f"{PRIVATE_ROOT}{run_id}/round-{round_:04d}/{site_id}/{name}"
    return site_prefix(run_id, round_, site_id) + name


@dataclass(frozen=True)
class SiteBucket:
    """A site's own bucket: `client` (minio), `bucket`, optional SSE for its secrets."""

    client: Any
    bucket: str
    site_id: str
    sse: Any = None

    def put(self, run_id: str, round_: int, name: str, data: bytes, secret: bool = False):
        key = site_key(run_id, round_, self.site_id, name)
        return put_create_only(
            self.client, self.bucket, key, data, sse=self.sse if secret else None
        )

    def get(self, run_id: str, round_: int, name: str) -> bytes:
        key = site_key(run_id, round_, self.site_id, name)
        response = self.client.get_object(self.bucket, key)
        try:
            return response.read()
        finally:
            response.close()
            response.release_conn()

    def exists(self, run_id: str, round_: int, name: str) -> bool:
        from components.common.create_only import object_exists

        key = site_key(run_id, round_, self.site_id, name)
        return object_exists(self.client, self.bucket, key)


class _FolderBlob:
    def __init__(self, root: Path, name: str) -> None:
        self.name, self._path = name, root / name

    def download_as_bytes(self) -> bytes:
        try:
            return self._path.read_bytes()
        except FileNotFoundError:
            raise SecAggError(
                f"{self.name}: not among the coordinator's published SecAgg+ objects "
                f"handed to this task ({self._path.parent})"
            ) from None

    def upload_from_string(self, data: bytes, if_generation_match: int | None = None) -> None:
        from google.api_core.exceptions import PreconditionFailed

        if if_generation_match == 0 and self._path.exists():
            raise PreconditionFailed(f"{self.name} exists")
        self._path.parent.mkdir(parents=True, exist_ok=True)
        self._path.write_bytes(data)


@dataclass(frozen=True)
class FolderBucket:
    """The coordinator's published objects as a local folder (a task's input artifact), with
    the few calls of a GCS bucket the site steps make."""

    root: Path

    @property
    def name(self) -> str:
        return str(self.root)

    def blob(self, name: str) -> _FolderBlob:
        return _FolderBlob(Path(self.root), name)

    def list_blobs(self, prefix: str = "") -> list[_FolderBlob]:
        root = Path(self.root)
        names = sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())
        return [_FolderBlob(root, n) for n in names if n.startswith(prefix)]


def mirror(coordinator: Any, run_id: str, folder: str | Path) -> int:
    """Copy every object the coordinator published under `secagg/<run>/` into `folder`
    (what the sites' next task reads); returns how many."""
    count = 0
    for blob in coordinator.list_blobs(prefix=f"{PUBLIC_ROOT}{run_id}/"):
        target = Path(folder) / blob.name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(blob.download_as_bytes())
        count += 1
    return count


def gcs_put(bucket: Any, name: str, data: bytes) -> None:
    """Write `name` create-only to the coordinator's bucket (SecAggError when it exists)."""
    from google.api_core.exceptions import PreconditionFailed

    try:
        bucket.blob(name).upload_from_string(data, if_generation_match=0)
    except PreconditionFailed:
        raise SecAggError(f"gs://{bucket.name}/{name} exists: refused to overwrite it") from None


def _gcs_get(bucket: Any, name: str) -> bytes:
    return bucket.blob(name).download_as_bytes()


EXCLUSION_FILE = "excluded.json"


def round_roster(
    coordinator: Any,
    run_id: str,
    round_: int,
    coordinator_public: Ed25519PublicKey | None = None,
) -> Roster:
    """The round's signed roster, without the sites the coordinator excluded at relay
    (`excluded.json`, signed; verified with `coordinator_public` when given: a site always
    gives it, the coordinator reading its own bucket need not)."""
    prefix = round_prefix(run_id, round_)
    roster = wire.load_roster(_gcs_get(coordinator, prefix + "roster.json"))
    if not any(
        b.name == prefix + EXCLUSION_FILE
        for b in coordinator.list_blobs(prefix=prefix + EXCLUSION_FILE)
    ):
        return roster
    exclusion = wire.load_exclusion(_gcs_get(coordinator, prefix + EXCLUSION_FILE))
    if coordinator_public is None:
        from dataclasses import replace

        return replace(roster, excluded=tuple(sorted(exclusion.excluded)))
    return apply_exclusion(roster, exclusion, coordinator_public)


def _ads_bundle(ads: Mapping[str, Advertisement]) -> bytes:
    return canonical_dumps(
        {s: json.loads(wire.dump_advertisement(a)) for s, a in sorted(ads.items())}
    ).encode()


def _load_ads(data: bytes) -> dict[str, Advertisement]:
    body = json.loads(data)
    return {
        s: wire.load_advertisement(canonical_dumps(a).encode(), f"advertisement of {s}")
        for s, a in body.items()
    }


# --- site steps -------------------------------------------------------------------------


def site_keys(
    store: SiteBucket,
    run_id: str,
    round_: int,
    site_key: Ed25519PrivateKey,
    rand: RandomBytes = os_random,
) -> Advertisement:
    """Step 1: fresh round keys; the state stays in the site's bucket, the signed
    advertisement is published beside it."""
    session = SiteSession(run_id, round_, store.site_id, site_key, rand)
    store.put(run_id, round_, "state-keys.json", session.state(), secret=True)
    store.put(run_id, round_, "advertisement.json", wire.dump_advertisement(session.advertisement))
    return session.advertisement


def _session(
    store: SiteBucket,
    run_id: str,
    round_: int,
    step: str,
    coordinator: Any,
    coordinator_public: Ed25519PublicKey,
    site_keys_: Mapping[str, Ed25519PublicKey],
    rand: RandomBytes,
) -> SiteSession:
    prefix = round_prefix(run_id, round_)
    session = SiteSession.restore(
        store.get(run_id, round_, f"state-{step}.json"), run_id, round_, store.site_id, rand
    )
    roster = round_roster(coordinator, run_id, round_, coordinator_public)
    ads = _load_ads(_gcs_get(coordinator, prefix + "advertisements.json"))
    session.accept_roster(roster, coordinator_public, ads, site_keys_)
    return session


def site_share(
    store: SiteBucket,
    coordinator: Any,
    run_id: str,
    round_: int,
    coordinator_public: Ed25519PublicKey,
    site_keys_: Mapping[str, Ed25519PublicKey],
    rand: RandomBytes = os_random,
) -> int:
    """Step 2: check the roster, seal shares for each neighbour into the site's bucket."""
    session = _session(
        store, run_id, round_, "keys", coordinator, coordinator_public, site_keys_, rand
    )
    shares = session.make_shares()
    for share in shares:
        store.put(run_id, round_, f"shares/{share.receiver}.json", wire.dump_share(share))
    store.put(run_id, round_, "state-shared.json", session.state(), secret=True)
    return len(shares)


def site_mask(
    store: SiteBucket,
    coordinator: Any,
    run_id: str,
    round_: int,
    quantized: np.ndarray,
    modulus_bits: int,
    coordinator_public: Ed25519PublicKey,
    site_keys_: Mapping[str, Ed25519PublicKey],
    rand: RandomBytes = os_random,
) -> None:
    """Step 3: take the shares relayed to this site, mask the quantized update, publish it."""
    session = _session(
        store, run_id, round_, "shared", coordinator, coordinator_public, site_keys_, rand
    )
    inbox = f"{round_prefix(run_id, round_)}inbox/{store.site_id}/"
    shares = [
        wire.load_share(blob.download_as_bytes(), blob.name)
        for blob in coordinator.list_blobs(prefix=inbox)
    ]
    session.receive_shares(shares)
    store.put(run_id, round_, "state-masked.json", session.state(), secret=True)
    store.put(run_id, round_, "masked.bin", wire.dump_masked(session.mask(quantized, modulus_bits)))


def site_answer(
    store: SiteBucket,
    coordinator: Any,
    run_id: str,
    round_: int,
    coordinator_public: Ed25519PublicKey,
    site_keys_: Mapping[str, Ed25519PublicKey],
) -> None:
    """Step 4: answer the coordinator's signed request, once (create-only answer + state)."""
    if store.exists(run_id, round_, "answer.json"):
        raise SecAggError(
            f"site {store.site_id}: already answered round {round_}'s request; not answering again"
        )
    session = _session(
        store, run_id, round_, "masked", coordinator, coordinator_public, site_keys_, os_random
    )
    request = wire.load_request(
        _gcs_get(coordinator, round_prefix(run_id, round_) + "request.json")
    )
    answer = session.respond(request, coordinator_public)
    store.put(run_id, round_, "state-answered.json", session.state(), secret=True)
    store.put(run_id, round_, "answer.json", wire.dump_response(answer))


# --- coordinator steps --------------------------------------------------------------------


def coordinator_roster(
    coordinator: Any,
    sites: Mapping[str, SiteBucket],
    run_id: str,
    round_: int,
    site_keys_: Mapping[str, Ed25519PublicKey],
    k: int,
    threshold: int,
    coordinator_key: Ed25519PrivateKey,
    rand: RandomBytes = os_random,
) -> list[str]:
    """Read each site's advertisement (a missing one: the site is not in this round), verify,
    publish the bundle and the signed roster. Returns the roster's sites."""
    from minio.error import S3Error

    ads = {}
    for site, store in sites.items():
        try:
            data = store.get(run_id, round_, "advertisement.json")
        except S3Error:
            continue
        ads[site] = wire.load_advertisement(data, f"advertisement of {site}")
    roster = make_roster(run_id, round_, ads, site_keys_, k, threshold, coordinator_key, rand)
    prefix = round_prefix(run_id, round_)
    gcs_put(coordinator, prefix + "advertisements.json", _ads_bundle(ads))
    gcs_put(coordinator, prefix + "roster.json", wire.dump_roster(roster))
    return roster.sites


def coordinator_exclude(
    coordinator: Any,
    run_id: str,
    round_: int,
    excluded: Mapping[str, str],
    coordinator_key: Ed25519PrivateKey,
) -> None:
    """Publish the signed exclusion of roster sites that shared nothing (create-only)."""
    prefix = round_prefix(run_id, round_)
    roster = wire.load_roster(_gcs_get(coordinator, prefix + "roster.json"))
    exclusion = make_exclusion(roster, excluded, coordinator_key)
    gcs_put(coordinator, prefix + EXCLUSION_FILE, wire.dump_exclusion(exclusion))


def coordinator_relay(
    coordinator: Any, sites: Mapping[str, SiteBucket], run_id: str, round_: int
) -> int:
    """Copy every sealed share from its sender's bucket into the receiver's inbox (the
    round's members only: an excluded site neither sent shares nor receives any)."""
    prefix = round_prefix(run_id, round_)
    roster = round_roster(coordinator, run_id, round_)
    count = 0
    for sender in roster.members:
        for receiver in roster.live_neighbours(sender):
            data = sites[sender].get(run_id, round_, f"shares/{receiver}.json")
            gcs_put(coordinator, f"{prefix}inbox/{receiver}/{sender}.json", data)
            count += 1
    return count


def coordinator_request(
    coordinator: Any,
    sites: Mapping[str, SiteBucket],
    run_id: str,
    round_: int,
    length: int,
    modulus_bits: int,
    coordinator_key: Ed25519PrivateKey,
) -> tuple[np.ndarray, list[str]]:
    """Sum the masked vectors that arrived (those sites survive), publish the signed
    request. Returns (the masked sum, the survivors)."""
    from minio.error import S3Error

    prefix = round_prefix(run_id, round_)
    roster = round_roster(coordinator, run_id, round_)
    total, survivors = None, []
    for site in roster.members:
        try:
            data = sites[site].get(run_id, round_, "masked.bin")
        except S3Error:
            continue
        vector = wire.load_masked(data, length, modulus_bits, f"masked update of {site}")
        total = vector.copy() if total is None else np.add(total, vector, out=total)
        survivors.append(site)
    if total is None:
        raise SecAggError(f"round {round_}: no masked update arrived")
    request = make_request(roster, survivors, coordinator_key)
    gcs_put(coordinator, prefix + "request.json", wire.dump_request(request))
    return total, survivors


def coordinator_unmask(
    coordinator: Any,
    sites: Mapping[str, SiteBucket],
    run_id: str,
    round_: int,
    total: np.ndarray,
    survivors: list[str],
    modulus_bits: int,
) -> np.ndarray:
    """Read the survivors' answers and remove the masks: the sum of their quantized updates."""
    from minio.error import S3Error

    prefix = round_prefix(run_id, round_)
    roster = round_roster(coordinator, run_id, round_)
    ads = _load_ads(_gcs_get(coordinator, prefix + "advertisements.json"))
    answers = []
    for site in survivors:
        try:
            data = sites[site].get(run_id, round_, "answer.json")
        except S3Error:
            continue
        answers.append(wire.load_response(data, f"answer of {site}"))
    return remove_masks(total, survivors, roster, ads, answers, modulus_bits)
