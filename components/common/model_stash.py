"""The locally trained model stays in the site's bucket; KFP carries only a reference.

On a cluster KFP uploads every output artifact to the pipeline root, a store outside the site.
`train`'s `local_model` (class local_model: no policy lets it go anywhere) must therefore not
hold the model. `stash` uploads the files train wrote to the site's own bucket under
`local-models/<run>/round-<rrrr>/<site>/<digest>/<file>` (content-addressed: a retried train
gets its own folder, a repeated identical upload is a no-op; SSE as the policy requires), and
the artifact folder receives only `ref.json`. `export` calls `unstash`, which downloads the
files and checks their sha256 before anything is derived from them. A train that abstained
wrote no model: its meta.json (the reason) goes into the artifact as it is.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from components.common.artifact_files import MODEL_FILE, REF_FILE, write_json
from components.common.object_store import site_minio_client
from components.common.site_task import SiteTask
from components.domain.models import Policy, Site

if TYPE_CHECKING:
    from minio import Minio

REF_FORMAT = "fedpipe.dev/local-model-ref/v1"
_FILE_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]{0,99}$")


class StashError(RuntimeError):
    """A local-model reference that cannot be honoured (names the site and the object)."""


def stash_prefix(run_id: str, round_index: int, site_id: str, digest: str) -> str:
    """`local-models/<run>/round-<rrrr>/<site>/<digest>/` (digest: 16 hex of the file hashes)."""
    return f"local-models/{run_id}/round-{round_index:04d}/{site_id}/{digest}/"


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def stash(
    files: Path,
    artifact: Path,
    *,
    site: Site,
    policy: Policy,
    run_id: str,
    round_index: int,
    client: Minio,
) -> dict[str, Any]:
    """Upload every file in `files` to the site's bucket and write `artifact/ref.json`.

    Returns the reference: {"format", "site_id", "bucket", "prefix", "files": {name: sha256}}.
    `artifact` ends up holding ref.json only.
    """
    from components.common.create_only import object_exists, put_create_only, sse_for_policy

    blobs = {p.name: p.read_bytes() for p in sorted(files.iterdir()) if p.is_file()}
    if not blobs:
        raise StashError(f"site {site.id}: train wrote nothing to stash in {files}")
    hashes = {name: _sha256(data) for name, data in blobs.items()}
    digest = _sha256(json.dumps(hashes, sort_keys=True).encode())[:16]
    bucket = site.object_store.bucket
    prefix = stash_prefix(run_id, round_index, site.id, digest)
    sse = sse_for_policy(policy, site.id)
    for name, data in blobs.items():
        if not object_exists(client, bucket, prefix + name):  # same digest = same bytes
            put_create_only(client, bucket, prefix + name, data, sse=sse)
    ref = {
        "format": REF_FORMAT,
        "site_id": site.id,
        "bucket": bucket,
        "prefix": prefix,
        "files": hashes,
    }
    write_json(artifact, REF_FILE, ref)
    return ref


def unstash(artifact: Path, dest: Path, *, site: Site, client: Minio) -> Path:
    """Download the files `artifact/ref.json` points at into `dest` (sha256-checked).

    StashError naming the site when the reference is missing, malformed, names another
    site or bucket, or an object is missing or differs from its recorded hash.
    """
    from minio.error import S3Error

    path = artifact / REF_FILE
    try:
        ref = json.loads(path.read_text())
        bucket, prefix, files = ref["bucket"], ref["prefix"], dict(ref["files"])
        owner = ref["site_id"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise StashError(
            f"site {site.id}: {path} is not a local-model reference ({exc}); wire export's "
            "local_model from this site's train task"
        ) from None
    if owner != site.id or bucket != site.object_store.bucket:
        raise StashError(
            f"site {site.id}: the local-model reference points at site {owner!r}, bucket "
            f"{bucket!r}; a site only exports the model it trained into its own bucket"
        )
    bad = [n for n in files if not _FILE_NAME.fullmatch(n)]
    if bad or not prefix.startswith("local-models/"):
        raise StashError(f"site {site.id}: {path} names unexpected objects {bad or prefix!r}")
    dest.mkdir(parents=True, exist_ok=True)
    for name, expected in sorted(files.items()):
        key = prefix + name
        try:
            response = client.get_object(bucket, key)
            try:
                data = response.read()
            finally:
                response.close()
                response.release_conn()
        except S3Error as exc:
            raise StashError(f"site {site.id}: s3://{bucket}/{key}: {exc.code}") from None
        if _sha256(data) != expected:
            raise StashError(
                f"site {site.id}: s3://{bucket}/{key} does not match the sha256 train recorded "
                "(changed after training); refusing to export it"
            )
        (dest / name).write_bytes(data)
    return dest


def train_into_site_bucket(
    run: Callable[..., object], task: SiteTask, paths: dict[str, Any], scratch: Path
) -> None:
    """Call train's `run(task, **paths)` with its model written to `scratch`, then stash it
    and leave only the reference in the real `local_model` artifact folder."""
    artifact = Path(paths["local_model"])
    run(task, **{**paths, "local_model": str(scratch)})
    if not (scratch / MODEL_FILE).exists():  # abstained: meta.json only, nothing to keep in
        shutil.copytree(scratch, artifact, dirs_exist_ok=True)  # the bucket (maybe unreachable)
        return
    stash(
        scratch,
        artifact,
        site=task.site,
        policy=task.policy,
        run_id=task.run_id,
        round_index=task.round_index,
        client=site_minio_client(task.site),
    )


def export_from_site_bucket(
    run: Callable[..., object], task: SiteTask, paths: dict[str, Any], scratch: Path
) -> None:
    """Fetch the stashed local model into `scratch`, then call export's `run(task, **paths)`
    on it."""
    artifact = Path(paths["local_model"])
    if not (artifact / REF_FILE).exists() and not (artifact / MODEL_FILE).exists():
        run(task, **paths)  # train abstained: its meta.json says why, there is no model
        return
    unstash(artifact, scratch, site=task.site, client=site_minio_client(task.site))
    run(task, **{**paths, "local_model": str(scratch)})
