"""`fedpipe doctor` under `aggregation.protection: he`: are the CKKS contexts in place?

Each member site whose policy asks for he must hold the federation's secret context in its
own bucket (`s3://<bucket>/he/context.secret`), the coordinator only the public copy
(`gs://<bucket>/he/context.public`, no secret key, and no `he/context.secret` beside it),
all under one context id (`components.he.keys`). `he_checks` is the logic over readers of
those objects (no I/O of its own); `store_readers` builds the readers with the credentials
fedpipe's tasks use (`components.common.object_store`), for the doctor command.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from components.domain.models import Site
from components.he.ckks import HeError
from components.he.wire import COORDINATOR_CONTEXT_KEY, SITE_CONTEXT_KEY
from pipelines.deploy.doctor import Check

SETUP = "fedpipe he-setup --out DIR"


@dataclass(frozen=True)
class Readers:
    """Object readers: bytes, or None when the object does not exist (errors raise)."""

    site: Callable[[Site, str], bytes | None]  # (member site, key) from its own bucket
    coordinator: Callable[[str], bytes | None]  # key from the coordinator's bucket


def he_sites(sites: Mapping[str, Site], protection_of: Callable[[str], str]) -> list[Site]:
    """The member sites whose policy asks for `aggregation.protection: he`."""
    return [site for sid, site in sorted(sites.items()) if protection_of(sid) == "he"]


def _context_id(data: bytes, *, secret: bool, where: str) -> str:
    from components.he.keys import open_envelope

    return open_envelope(data, secret=secret, where=where).context_id


def _site_check(site: Site, readers: Readers) -> tuple[Check, str | None]:
    where = f"s3://{site.object_store.bucket}/{SITE_CONTEXT_KEY}"
    name = f"he context {site.id}"
    fix = (
        f"{SETUP}, then put DIR/{site.id}/he-context.secret at {where} with {site.id}'s own "
        "identity (one setup for the whole federation)"
    )
    try:
        data = readers.site(site, SITE_CONTEXT_KEY)
    except Exception as exc:  # the store's own error: its type and message name it
        return Check(name, False, f"cannot read {where}: {type(exc).__name__}: {exc}", fix), None
    if data is None:
        return Check(name, False, f"{where} is missing (its policy asks for he)", fix), None
    try:
        context_id = _context_id(data, secret=True, where=where)
    except HeError as exc:
        return Check(name, False, str(exc), fix), None
    return Check(name, True, f"{where}: secret context {context_id}"), context_id


def _coordinator_checks(coordinator: Site, readers: Readers) -> tuple[list[Check], str | None]:
    bucket = f"gs://{coordinator.object_store.bucket}"
    public, secret = f"{bucket}/{COORDINATOR_CONTEXT_KEY}", f"{bucket}/{SITE_CONTEXT_KEY}"
    name = f"he context {coordinator.id}"
    fix = f"{SETUP}, then put DIR/{coordinator.id}/he-context.public at {public}"
    try:
        data = readers.coordinator(COORDINATOR_CONTEXT_KEY)
        stray = readers.coordinator(SITE_CONTEXT_KEY)
    except Exception as exc:
        return [Check(name, False, f"cannot read {bucket}: {type(exc).__name__}: {exc}", fix)], None
    checks: list[Check] = []
    if stray is not None:
        checks.append(
            Check(
                f"{name} secret key",
                False,
                f"{secret} exists: the coordinator must not hold the sites' secret context",
                f"delete {secret} (and set up again: the coordinator's side has seen the key)",
            )
        )
    if data is None:
        return [*checks, Check(name, False, f"{public} is missing", fix)], None
    try:
        context_id = _context_id(data, secret=False, where=public)
    except HeError as exc:
        return [*checks, Check(name, False, str(exc), fix)], None
    ok = Check(name, True, f"{public}: public context {context_id}, no secret key")
    return [*checks, ok], context_id


def he_checks(sites: list[Site], coordinator: Site, readers: Readers) -> list[Check]:
    """One check per he site, the coordinator's, and one that they share one context id
    (when all could be read). Empty when no site asks for he."""
    if not sites:
        return []
    checks, ids = [], {}
    for site in sites:
        check, context_id = _site_check(site, readers)
        checks.append(check)
        ids[site.id] = context_id
    coordinator_checks, ids[coordinator.id] = _coordinator_checks(coordinator, readers)
    checks += coordinator_checks
    if None not in ids.values():
        distinct = sorted(set(ids.values()), key=str)
        if len(distinct) == 1:
            checks.append(Check("he context id", True, f"every holder has {distinct[0]}"))
        else:
            held = ", ".join(f"{s}: {c}" for s, c in ids.items())
            checks.append(
                Check(
                    "he context id",
                    False,
                    f"the holders come from different setups ({held})",
                    f"{SETUP} once and put each file where it says, replacing every copy",
                )
            )
    return checks


def store_readers(coordinator: Site) -> Readers:
    """Readers through the clients fedpipe's tasks use (site S3 keys from the environment or
    $FEDPIPE_SECRETS_DIR, the coordinator's GCS credentials or emulator)."""
    from components.common.create_only import read_or_none
    from components.common.object_store import coordinator_gcs_client, site_minio_client
    from components.he.keys import MAX_CONTEXT_BYTES, read_gcs_context

    def site(s: Site, key: str) -> bytes | None:
        return read_or_none(site_minio_client(s), s.object_store.bucket, key, MAX_CONTEXT_BYTES)

    def coordinator_read(key: str) -> bytes | None:
        client = coordinator_gcs_client(coordinator)
        return read_gcs_context(client.bucket(coordinator.object_store.bucket), key)

    return Readers(site, coordinator_read)
