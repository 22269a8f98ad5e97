"""Federation setup for `aggregation.protection: he`: one CKKS context, the secret key only at
the sites (the federation operator's step, NVFlare's provisioning; `fedpipe he-setup`).

`fedpipe he-setup --out DIR` writes `DIR/<site>/he-context.secret` (mode 0600; each site's
operator puts it into the site's own bucket as `he/context.secret`) and
`DIR/<coordinator>/he-context.public` (no secret key; the coordinator's GCS bucket,
`he/context.public`). `fedpipe run --local` installs a context into the local buckets itself
(`install_local`), keeping one that every bucket already holds from an earlier run.

Whoever runs the setup sees the secret key once: the federation's operator, trusted by the
sites, not the coordinator's. Nothing here is a pipeline task.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from components.he.wire import COORDINATOR_CONTEXT_KEY, SITE_CONTEXT_KEY, unpack_context

SITE_FILE = "he-context.secret"
COORDINATOR_FILE = "he-context.public"


@dataclass(frozen=True)
class Installed:
    """What setup left in place: the context id and whether it was made now."""

    context_id: str
    created: bool


def write_files(out: Path, site_ids: list[str], coordinator_id: str) -> Installed:
    """A fresh context as files for the operators to upload (see module doc)."""
    from components.he.keys import new_federation_keys

    keys = new_federation_keys()
    for site_id in site_ids:
        folder = out / site_id
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / SITE_FILE
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(keys.site)
    folder = out / coordinator_id
    folder.mkdir(parents=True, exist_ok=True)
    (folder / COORDINATOR_FILE).write_bytes(keys.coordinator)
    return Installed(keys.context_id, True)


def current_id(
    site_ids: list[str],
    read_site: Callable[[str], bytes | None],
    read_coordinator: Callable[[], bytes | None],
) -> str | None:
    """The context id every site and the coordinator already hold (the sites a secret copy,
    the coordinator a public one), else None."""
    ids = set()
    for data, secret in [(read_site(s), True) for s in site_ids] + [(read_coordinator(), False)]:
        if data is None:
            return None
        try:
            envelope = unpack_context(data)
        except ValueError:
            return None
        if envelope.secret != secret:
            return None
        ids.add(envelope.context_id)
    return ids.pop() if len(ids) == 1 else None


def install_local(
    site_ids: list[str],
    *,
    read_site: Callable[[str], bytes | None],
    read_coordinator: Callable[[], bytes | None],
    put_site: Callable[[str, bytes], None],
    put_coordinator: Callable[[bytes], None],
) -> Installed:
    """Keep the context all buckets hold, or make one and put the secret copy into every
    site's bucket and the public copy into the coordinator's."""
    from components.he.keys import new_federation_keys

    held = current_id(site_ids, read_site, read_coordinator)
    if held is not None:
        return Installed(held, False)
    keys = new_federation_keys()
    for site_id in site_ids:
        put_site(site_id, keys.site)
    put_coordinator(keys.coordinator)
    return Installed(keys.context_id, True)


def describe(installed: Installed, sites: Mapping[str, str], coordinator_bucket: str) -> str:
    """One line for the run's output ({site id: bucket})."""
    where = ", ".join(f"s3://{b}/{SITE_CONTEXT_KEY}" for b in sites.values())
    verb = "created" if installed.created else "kept from an earlier run"
    return (
        f"homomorphic encryption: CKKS context {installed.context_id} {verb}; secret key in "
        f"each site's own bucket ({where}), public context (no secret key) in "
        f"gs://{coordinator_bucket}/{COORDINATOR_CONTEXT_KEY}"
    )
