"""Publish global model versions to the coordinator's GCS bucket, never losing or overwriting one.

Layout in the bucket (per run):

* `models/<run>/v<version>/model.npz`, `optimizer.npz` (when the optimizer has state),
  `meta.json`: written create-only (`if_generation_match=0`); the create of `model.npz` is the
  claim on the version, so of two coordinators publishing the same version exactly one wins.
* `models/<run>/latest.json`: the pointer, replaced only with `if_generation_match=<generation
  read before the version was written>`; a pointer that moved meanwhile is a conflict, never
  overwritten.

A conflict raises `PublishConflictError` and removes what this call wrote (its own generations
only), so the bucket holds no partial version. The library's own retries could make a write
look like a conflict with itself; every object carries a per-call writer token in its metadata,
so such a "conflict" is recognised as our own success.

Idempotent for the very same model: publishing version r again with a byte-identical model on
the same parent (a retried task, a resumed run replaying its rounds, a crash between the
version's objects and the pointer) confirms it (`Published.reused`) instead of failing; only
a *different* model for a taken version is a conflict.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from components.common.artifact_files import META_FILE, MODEL_FILE, OPTIMIZER_FILE, json_bytes
from components.domain.canonical import sha256_hex

if TYPE_CHECKING:
    from google.cloud.storage import Blob, Bucket

WRITER_KEY = "fedpipe-writer"
SHA_KEY = "fedpipe-sha256"
PARENT_KEY = "fedpipe-parent-version"


class PublishConflictError(RuntimeError):
    """Another coordinator published first (or moved `latest`); nothing of ours was kept."""


class PublishError(RuntimeError):
    """The bucket holds something unreadable (a corrupt pointer, a hash mismatch)."""


RUNS_PREFIX = "models"


def run_prefix(run_id: str) -> str:
    return f"{RUNS_PREFIX}/{run_id}"


def version_prefix(run_id: str, version: int) -> str:
    """`models/<run>/v<version>` (the folder of one global model version)."""
    return f"{run_prefix(run_id)}/v{version}"


def latest_key(run_id: str) -> str:
    return f"{run_prefix(run_id)}/latest.json"


@dataclass(frozen=True)
class LatestPointer:
    """The `latest.json` of a run as read, with the generation a replacement must match."""

    version: int
    prefix: str
    model_sha256: str
    has_optimizer: bool
    generation: int
    body: dict[str, Any]


@dataclass(frozen=True)
class Published:
    """A version that is now reachable from `latest`.

    reused: an identical version (same model sha256, same parent) had already been published,
    by an earlier attempt of this round (a retry, a resumed run); nothing new was written.
    """

    version: int
    uri: str  # gs://bucket/models/<run>/v<version>
    model_generation: int
    latest_generation: int
    reused: bool = False


@dataclass(frozen=True)
class PublishPlan:
    """What a publish will write, fixed before any write: the latest generation it builds on.

    done: set when the identical version is already published (nothing to write).
    """

    run_id: str
    version: int
    parent_version: int
    model_sha256: str
    expected_latest_generation: int  # 0 = no pointer yet
    writer: str
    done: Published | None = None
    # the version's model object: model.npz, or model.ckks (protection he: the encrypted
    # global model, the coordinator holds no plain model)
    model_file: str = MODEL_FILE


def read_latest(bucket: Bucket, run_id: str, attempts: int = 3) -> LatestPointer | None:
    """The run's latest pointer, or None when nothing was published for `run_id` yet.

    Body and generation are read as one (the download is conditional on the generation the
    metadata read saw); a pointer replaced in between is read again, up to `attempts` times.
    """
    from google.api_core.exceptions import NotFound, PreconditionFailed

    for attempt in range(attempts):
        blob = bucket.get_blob(latest_key(run_id))
        if blob is None:
            return None
        try:
            data = blob.download_as_bytes(if_generation_match=blob.generation)
            break
        except (PreconditionFailed, NotFound):
            if attempt == attempts - 1:
                raise PublishConflictError(
                    f"gs://{bucket.name}/{latest_key(run_id)} kept changing while being read"
                ) from None
    try:
        body = json.loads(data)
        return LatestPointer(
            version=int(body["version"]),
            prefix=str(body["prefix"]),
            model_sha256=str(body["model_sha256"]),
            has_optimizer=bool(body["has_optimizer"]),
            generation=int(blob.generation),
            body=body,
        )
    except (ValueError, KeyError, TypeError) as exc:
        raise PublishError(f"gs://{bucket.name}/{latest_key(run_id)}: bad pointer: {exc}") from exc


def _identical_version(
    bucket: Bucket,
    run_id: str,
    version: int,
    parent_version: int,
    model_sha256: str,
    model_file: str = MODEL_FILE,
) -> Blob | None:
    """`v<version>/<model_file>` when it holds exactly `model_sha256` built on `parent_version`.

    Uses the object's metadata; objects copied without it (a restored bucket mirror) are
    judged by their content hash and the `parent_version` recorded in `meta.json`.
    """
    prefix = version_prefix(run_id, version)
    blob = bucket.get_blob(f"{prefix}/{model_file}")
    if blob is None:
        return None
    tags = blob.metadata or {}
    if SHA_KEY in tags and PARENT_KEY in tags:
        same = tags[SHA_KEY] == model_sha256 and tags[PARENT_KEY] == str(parent_version)
        return blob if same else None
    meta_blob = bucket.get_blob(f"{prefix}/{META_FILE}")
    if meta_blob is None:
        return None
    try:
        recorded_parent = json.loads(meta_blob.download_as_bytes()).get("parent_version")
    except (ValueError, AttributeError):
        return None
    if recorded_parent != parent_version:
        return None
    return blob if sha256_hex(blob.download_as_bytes()) == model_sha256 else None


def plan_publish(
    bucket: Bucket,
    *,
    run_id: str,
    version: int,
    parent_version: int,
    model_sha256: str,
    model_file: str = MODEL_FILE,
) -> PublishPlan:
    """Read `latest` and check that it is the parent this version builds on.

    While the run has no pointer, any parent is accepted: version 0 (the seeded init, never
    published) or a version resumed from another run (continuation across runs); the pointer's
    create-only write still lets only one coordinator win. When `latest` is already at or past
    `version` and that version is this very model (same sha256 and parent: a retried or resumed
    round), the plan is `done`. Otherwise a `latest` elsewhere raises PublishConflictError.
    """
    if version != parent_version + 1:
        raise ValueError(f"version {version} does not follow parent version {parent_version}")
    latest = read_latest(bucket, run_id)
    current = latest.version if latest is not None else 0
    plan = PublishPlan(
        run_id=run_id,
        version=version,
        parent_version=parent_version,
        model_sha256=model_sha256,
        expected_latest_generation=latest.generation if latest is not None else 0,
        writer=uuid.uuid4().hex,
        model_file=model_file,
    )
    if latest is None or current == parent_version:
        return plan
    if latest is not None and current >= version:
        same = _identical_version(bucket, run_id, version, parent_version, model_sha256, model_file)
        if same is not None:
            done = Published(
                version=version,
                uri=f"gs://{bucket.name}/{version_prefix(run_id, version)}",
                model_generation=int(same.generation),
                latest_generation=latest.generation,
                reused=True,
            )
            return replace(plan, done=done)
    raise PublishConflictError(
        f"gs://{bucket.name}/{latest_key(run_id)} is at version {current}, but this round "
        f"builds on version {parent_version} (and version {version} there, if any, is another "
        f"model): another coordinator has published; nothing written"
    )


class _Exists(Exception):
    """A create-only upload found the object already there (written by someone else)."""

    def __init__(self, blob: Blob | None) -> None:
        super().__init__()
        self.blob = blob


def _create(
    bucket: Bucket, name: str, data: bytes, content_type: str, metadata: dict[str, str]
) -> Blob:
    """Create-only upload; returns the blob (with its generation) or raises `_Exists`."""
    from google.api_core.exceptions import PreconditionFailed

    blob = bucket.blob(name)
    blob.metadata = {**metadata, SHA_KEY: sha256_hex(data)}
    try:
        blob.upload_from_string(data, content_type=content_type, if_generation_match=0)
        return blob
    except PreconditionFailed as exc:
        existing = bucket.get_blob(name)
        if existing is not None and (existing.metadata or {}).get(WRITER_KEY) == metadata.get(
            WRITER_KEY
        ):
            return existing  # our own write, retried by the library
        raise _Exists(existing) from exc


def _remove(bucket: Bucket, blobs: list[Blob]) -> None:
    """Delete exactly the generations this call created (best effort)."""
    from google.api_core.exceptions import GoogleAPIError

    for blob in blobs:
        try:
            bucket.delete_blob(blob.name, generation=blob.generation)
        except GoogleAPIError:
            pass


def _twin_companion(blob: Blob, name: str, data: bytes, plan: PublishPlan) -> bool:
    """Whether an existing `optimizer.npz` / `meta.json` belongs to this very version.

    An identical twin (another coordinator publishing the same model on the same parent) that
    adopted our `model.npz` may write the version's other objects before we do; they are then
    the version's, not a conflict. `meta.json` counts when its stamped parent and model hash
    are ours (its other fields may differ, as a retry's do); other objects when their bytes are.
    """
    if name == META_FILE:
        try:
            stamped = json.loads(blob.download_as_bytes())
        except ValueError:
            return False
        return (
            isinstance(stamped, dict)
            and stamped.get("model_sha256") == plan.model_sha256
            and stamped.get("parent_version") == plan.parent_version
        )
    return sha256_hex(blob.download_as_bytes()) == sha256_hex(data)


def commit_publish(
    bucket: Bucket,
    plan: PublishPlan,
    *,
    model_bytes: bytes,
    optimizer_bytes: bytes | None,
    meta: Mapping[str, Any],
) -> Published:
    """Write the version create-only, then move `latest` from the planned generation.

    A version folder left by an earlier attempt with this very model (same sha256 and parent)
    is adopted as is. Raises PublishConflictError (after removing what this call created)
    when the version holds another model or `latest` moved to something else since
    `plan_publish`.
    """
    from google.api_core.exceptions import PreconditionFailed

    if plan.done is not None:
        return plan.done
    if sha256_hex(model_bytes) != plan.model_sha256:
        raise ValueError("model_bytes differ from the sha256 the plan was made for")
    prefix = version_prefix(plan.run_id, plan.version)
    tags = {WRITER_KEY: plan.writer, PARENT_KEY: str(plan.parent_version)}
    model_file = plan.model_file
    objects: list[tuple[str, bytes, str]] = [(model_file, model_bytes, "application/octet-stream")]
    if optimizer_bytes is not None:
        objects.append((OPTIMIZER_FILE, optimizer_bytes, "application/octet-stream"))
    # parent and hash also in the content: they survive copies that drop object metadata
    stamped = {**meta, "parent_version": plan.parent_version, "model_sha256": plan.model_sha256}
    objects.append((META_FILE, json_bytes(stamped), "application/json"))

    written: list[Blob] = []
    adopted = False  # the version folder is an earlier identical attempt's
    model_blob: Blob | None = None
    for name, data, content_type in objects:
        try:
            blob = _create(bucket, f"{prefix}/{name}", data, content_type, tags)
            written.append(blob)
        except _Exists as exists:
            if name == model_file:
                same = _identical_version(
                    bucket,
                    plan.run_id,
                    plan.version,
                    plan.parent_version,
                    plan.model_sha256,
                    model_file,
                )
                adopted = same is not None
            twin = exists.blob is not None and _twin_companion(exists.blob, name, data, plan)
            if not (adopted or twin) or exists.blob is None:
                _remove(bucket, written)
                generation = exists.blob.generation if exists.blob is not None else "?"
                raise PublishConflictError(
                    f"gs://{bucket.name}/{prefix}/{name} already exists (generation "
                    f"{generation}, another writer, another model): version not published, "
                    f"nothing overwritten"
                ) from None
            blob = exists.blob
        if name == model_file:
            model_blob = blob
    assert model_blob is not None

    pointer = {
        "run_id": plan.run_id,
        "version": plan.version,
        "parent": plan.parent_version,
        "prefix": prefix,
        "model_sha256": plan.model_sha256,
        "model_generation": int(model_blob.generation),
        "has_optimizer": optimizer_bytes is not None,
        "writer": plan.writer,
    }
    if model_file != MODEL_FILE:
        pointer["model_file"] = model_file
    latest = bucket.blob(latest_key(plan.run_id))
    latest.metadata = {WRITER_KEY: plan.writer}
    try:
        latest.upload_from_string(
            json_bytes(pointer),
            content_type="application/json",
            if_generation_match=plan.expected_latest_generation,
        )
        latest_generation = int(latest.generation)
    except PreconditionFailed as exc:
        current = read_latest(bucket, plan.run_id)
        if current is not None and current.body.get("writer") == plan.writer:
            latest_generation = current.generation  # our own write, retried by the library
        elif (
            current is not None
            and current.version >= plan.version
            and _identical_version(
                bucket,
                plan.run_id,
                plan.version,
                plan.parent_version,
                plan.model_sha256,
                model_file,
            )
            is not None
        ):
            # an identical twin of this round got there first: same model, nothing lost
            return Published(
                version=plan.version,
                uri=f"gs://{bucket.name}/{prefix}",
                model_generation=int(model_blob.generation),
                latest_generation=current.generation,
                reused=True,
            )
        else:
            _remove(bucket, written)
            raise PublishConflictError(
                f"gs://{bucket.name}/{latest_key(plan.run_id)} moved since it was read "
                f"(expected generation {plan.expected_latest_generation}, now "
                f"{current.generation if current else 'deleted'}): version {plan.version} "
                f"withdrawn, the pointer left as the other writer set it"
            ) from exc
    return Published(
        version=plan.version,
        uri=f"gs://{bucket.name}/{prefix}",
        model_generation=int(model_blob.generation),
        latest_generation=latest_generation,
        reused=adopted,
    )


def publish_version(
    bucket: Bucket,
    *,
    run_id: str,
    version: int,
    parent_version: int,
    model_bytes: bytes,
    optimizer_bytes: bytes | None,
    meta: Mapping[str, Any],
    model_file: str = MODEL_FILE,
) -> Published:
    """`plan_publish` then `commit_publish`: the one call the aggregate executor makes.
    `model_file`: the name of the version's model object (`model.ckks` under he)."""
    plan = plan_publish(
        bucket,
        run_id=run_id,
        version=version,
        parent_version=parent_version,
        model_sha256=sha256_hex(model_bytes),
        model_file=model_file,
    )
    return commit_publish(
        bucket, plan, model_bytes=model_bytes, optimizer_bytes=optimizer_bytes, meta=meta
    )


@dataclass(frozen=True)
class LatestVersion:
    """A published version read back (for resume)."""

    pointer: LatestPointer
    model_bytes: bytes
    optimizer_bytes: bytes | None
    meta: dict[str, Any]


def load_latest(bucket: Bucket, run_id: str) -> LatestVersion | None:
    """Download the version `latest` points at, checking the model's sha256; None if none."""
    pointer = read_latest(bucket, run_id)
    if pointer is None:
        return None

    def get(name: str) -> bytes:
        blob = bucket.get_blob(f"{pointer.prefix}/{name}")
        if blob is None:
            raise PublishError(
                f"gs://{bucket.name}/{pointer.prefix}/{name} missing (latest points at it)"
            )
        return blob.download_as_bytes(if_generation_match=blob.generation)

    model_file = str(pointer.body.get("model_file", MODEL_FILE))
    model_bytes = get(model_file)
    if sha256_hex(model_bytes) != pointer.model_sha256:
        raise PublishError(
            f"gs://{bucket.name}/{pointer.prefix}/{model_file}: sha256 differs from latest.json"
        )
    optimizer_bytes = get(OPTIMIZER_FILE) if pointer.has_optimizer else None
    try:
        meta = json.loads(get(META_FILE))
    except ValueError as exc:
        raise PublishError(f"gs://{bucket.name}/{pointer.prefix}/meta.json: {exc}") from exc
    return LatestVersion(pointer, model_bytes, optimizer_bytes, meta)


def newest_across_runs(
    bucket: Bucket, *, model_name: str, dataset: str, exclude_run: str | None = None
) -> tuple[str, LatestVersion] | None:
    """The newest published version of any run (by the time its `latest.json` was written)
    whose meta has this `model_name` and `dataset`, as (run id, version); None when none.

    For continuation across runs (a recurring pipeline whose run id is the KFP job id).
    """
    runs = bucket.list_blobs(prefix=f"{RUNS_PREFIX}/", delimiter="/")
    for _ in runs.pages:  # the prefixes are known once every page was read
        pass
    candidates = []
    for prefix in runs.prefixes:
        run = prefix[len(RUNS_PREFIX) + 1 : -1]
        if run == exclude_run:
            continue
        blob = bucket.get_blob(latest_key(run))
        if blob is not None and blob.updated is not None:
            candidates.append((blob.updated, run))
    for _, run in sorted(candidates, reverse=True):
        latest = load_latest(bucket, run)
        if (
            latest is not None
            and latest.meta.get("protection") != "he"  # an encrypted aggregate: not a start
            and latest.meta.get("model_name") == model_name
            and latest.meta.get("dataset") == dataset
        ):
            return run, latest
    return None
