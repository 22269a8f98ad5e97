"""Local object stores for `fedpipe run --local`: one S3 server (SeaweedFS) per site, one GCS
emulator for the coordinator, their buckets, credentials and signing keys.

State across runs (the lifetime budget is real): each S3 server keeps its data folder under
`<runs>/.state/seaweedfs/<site>/` (with its SSE key-encryption key beside it), so a site's
ledger survives the next run and also a server that dies mid-run (what it acknowledged is on
disk). The GCS emulator keeps objects in memory: `save_state`/`restore_state` mirror its
bucket to `<runs>/.state/gcs/`. The S3 buckets are mirrored too, to `<runs>/.state/s3/`, as a
readable copy (a store that does not answer keeps its previous copy); it is restored only into
a data folder that is new (a first run, or one from before the data folders existed).
"""

from __future__ import annotations

import io
import json
import os
import secrets
import shutil
import stat
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from components.common.create_only import STORE_ERRORS
from components.common.manifest import generate_keypair
from components.common.object_store import StoreAccessError, credentials_problem
from components.domain.models import Site
from pipelines.access.rules import (
    BucketRules,
    KeyPair,
    seaweedfs_bucket_policy,
    seaweedfs_identities,
)
from pipelines.localstack.servers import (
    GcsServer,
    S3Server,
    minio_client,
    start_servers,
    stop_servers,
)

COORDINATOR_READ = "coordinator-read"  # secrets folder of the coordinator's read-only keys
STATE_S3 = "s3"
STATE_GCS = "gcs"


def write_secret(path: Path, value: str) -> None:
    """Write `value` to `path` with mode 0600 (folder 0700), never world-readable."""
    path.parent.mkdir(parents=True, exist_ok=True)
    os.chmod(path.parent, stat.S_IRWXU)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(value)
    os.chmod(path, 0o600)


def ensure_signing_keys(secrets_dir: Path, site_ids: list[str]) -> dict[str, str]:
    """Per-site Ed25519 keys under `secrets_dir/<site>/signing_key` (kept when present).

    Returns {site_id: public key PEM}. Reusing existing keys lets a resumed run verify the
    updates it exported before.
    """
    from cryptography.hazmat.primitives import serialization

    public: dict[str, str] = {}
    for site_id in site_ids:
        path = secrets_dir / site_id / "signing_key"
        if path.is_file():
            key = serialization.load_pem_private_key(path.read_bytes(), password=None)
            public[site_id] = (
                key.public_key()
                .public_bytes(
                    serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
                )
                .decode()
            )
            continue
        private_pem, public_pem = generate_keypair()
        write_secret(path, private_pem)
        write_secret(secrets_dir / site_id / "signing_key.pub", public_pem)
        public[site_id] = public_pem
    return public


@dataclass
class ExternalS3:
    """An S3-compatible endpoint that is already running (FEDPIPE_ENDPOINT_OVERRIDES)."""

    endpoint: str
    access_key: str
    secret_key: str

    def stop(self) -> None:
        """Not ours to stop."""


@dataclass
class ExternalGcs:
    """A GCS emulator that is already running (STORAGE_EMULATOR_HOST)."""

    url: str

    def client(self, project: str = "fedpipe-local"):
        from google.auth.credentials import AnonymousCredentials
        from google.cloud import storage

        return storage.Client(
            project=project,
            credentials=AnonymousCredentials(),
            client_options={"api_endpoint": self.url},
        )

    def stop(self) -> None:
        """Not ours to stop."""


def configured_endpoints(
    members: Mapping[str, Site], coordinator: Site, environ: Mapping[str, str]
) -> tuple[dict[str, str], str | None] | None:
    """({site: host:port}, GCS emulator URL) when the environment names every store, else None.

    Every member needs an entry in FEDPIPE_ENDPOINT_OVERRIDES (JSON) and a GCS coordinator
    needs STORAGE_EMULATOR_HOST; partial configuration is an error (ValueError).
    """
    raw = environ.get("FEDPIPE_ENDPOINT_OVERRIDES")
    if not raw:
        return None
    try:
        overrides = json.loads(raw)
    except ValueError as exc:
        raise ValueError(f"FEDPIPE_ENDPOINT_OVERRIDES is not JSON: {exc}") from None
    missing = [s for s in members if s not in overrides]
    gcs = environ.get("STORAGE_EMULATOR_HOST")
    if coordinator.object_store.type == "gcs" and not gcs:
        missing.append(f"{coordinator.id} (STORAGE_EMULATOR_HOST)")
    if missing:
        raise ValueError(
            "FEDPIPE_ENDPOINT_OVERRIDES is set but does not name every store: missing "
            + ", ".join(missing)
            + " (unset it to let fedpipe start local servers)"
        )
    return {s: str(overrides[s]) for s in members}, gcs


@contextmanager
def _credentials_checked(site_id: str, store: str, what: str) -> Iterator[None]:
    """S3 errors that mean "wrong keys" become StoreAccessError naming site and store."""
    from minio.error import S3Error

    try:
        yield
    except S3Error as exc:
        message = credentials_problem(exc.code, site_id, store, what)
        if message is None:
            raise
        raise StoreAccessError(message) from None


def new_key_pair() -> KeyPair:
    """A fresh random access key / secret key (local stores only)."""
    return KeyPair("FP" + secrets.token_hex(9).upper(), secrets.token_urlsafe(30))


@dataclass
class LocalStores:
    """Running servers for a federation: `s3[site_id]` and `gcs` (None when not started).

    With `rules` (`pipelines.access.rules.access_rules`), each site's server knows the site's
    own identity and the coordinator's read-only identity for it (fresh random keys in
    `keys[site_id][identity]`), and each bucket gets its delete denials. The administrator
    (`minio()`) prepares and mirrors the stores; tasks get only the identities' keys."""

    s3: dict[str, S3Server | ExternalS3] = field(default_factory=dict)
    gcs: GcsServer | ExternalGcs | None = None
    state_loaded: bool = False  # set once restore_state has filled the fresh buckets
    external: bool = False  # connected to stores fedpipe did not start
    rules: dict[str, BucketRules] = field(default_factory=dict)
    keys: dict[str, dict[str, KeyPair]] = field(default_factory=dict)
    fresh: set[str] = field(default_factory=set)  # S3 sites whose data folder was new at start
    unsaved: dict[str, str] = field(default_factory=dict)  # last save_state: site -> why not

    def start(
        self,
        members: Mapping[str, Site],
        coordinator: Site,
        rules: Mapping[str, BucketRules] | None = None,
        data_root: Path | None = None,
    ) -> None:
        """Start one S3 server per member (all at once) and a GCS emulator if the coordinator
        uses GCS; with `rules`, each server gets its site's identities; with `data_root`, each
        S3 server keeps its data in `data_root/<site>/` (kept across runs and when a server
        dies: what it acknowledged is on disk) instead of a temporary folder."""
        self.rules = dict(rules or {})
        ids = [*members, *([coordinator.id] if coordinator.object_store.type == "s3" else [])]
        servers = {}
        for site_id in ids:
            identities: list[dict] = []
            if site_id in self.rules:
                bucket = self.rules[site_id]
                self.keys[site_id] = {
                    bucket.site_identity: new_key_pair(),
                    bucket.coordinator_identity: new_key_pair(),
                }
                identities = seaweedfs_identities(bucket, self.keys[site_id])
            data_dir = None if data_root is None else data_root / site_id
            if data_dir is not None and not (data_dir.is_dir() and any(data_dir.iterdir())):
                self.fresh.add(site_id)
            servers[site_id] = S3Server(identities=identities, data_dir=data_dir)
        self.s3.update(servers)
        start_servers(servers.values())
        if coordinator.object_store.type == "gcs":
            self.gcs = GcsServer()
            self.gcs.start()

    def connect(self, endpoints: Mapping[str, str], gcs_url: str | None) -> None:
        """Use already running stores; credentials from the sites' secrets (CONTRACT.md)."""
        from components.common.secrets import site_secret

        for site_id, endpoint in endpoints.items():
            self.s3[site_id] = ExternalS3(
                endpoint.removeprefix("http://"),
                site_secret(site_id, "S3_ACCESS_KEY"),
                site_secret(site_id, "S3_SECRET_KEY"),
            )
        if gcs_url:
            self.gcs = ExternalGcs(gcs_url)
        self.external = True

    def stop(self) -> None:
        """Stop every server (S3 servers at once); idempotent, never raises for a dead one."""
        stop_servers([s for s in self.s3.values() if isinstance(s, S3Server)])
        if self.gcs is not None:
            self.gcs.stop()

    def endpoint_overrides(self) -> dict[str, str]:
        """{site_id: "127.0.0.1:PORT"} for FEDPIPE_ENDPOINT_OVERRIDES."""
        return {site_id: server.endpoint for site_id, server in self.s3.items()}

    def env(self, secrets_dir: Path) -> dict[str, str]:
        """Environment the tasks need (CONTRACT.md, "Secrets"): dir, endpoints, emulator."""
        env = {
            "FEDPIPE_SECRETS_DIR": str(secrets_dir),
            "FEDPIPE_ENDPOINT_OVERRIDES": json.dumps(self.endpoint_overrides(), sort_keys=True),
        }
        if self.gcs is not None:
            env["STORAGE_EMULATOR_HOST"] = self.gcs.url
        return env

    def write_credentials(self, secrets_dir: Path) -> None:
        """Each S3 site's keys as files (0600): its own identity's under `<site>/`, the
        coordinator's read-only identity's under `<site>/coordinator-read/` (without rules,
        or for stores fedpipe did not start, the server's keys under `<site>/`)."""
        for site_id, server in self.s3.items():
            keys = self.keys.get(site_id)
            if not keys:
                write_secret(secrets_dir / site_id / "s3_access_key", server.access_key)
                write_secret(secrets_dir / site_id / "s3_secret_key", server.secret_key)
                continue
            bucket = self.rules[site_id]
            for folder, name in (
                (secrets_dir / site_id, bucket.site_identity),
                (secrets_dir / site_id / COORDINATOR_READ, bucket.coordinator_identity),
            ):
                write_secret(folder / "s3_access_key", keys[name].access_key)
                write_secret(folder / "s3_secret_key", keys[name].secret_key)

    def minio(self, site_id: str):
        """A minio client for `site_id`'s server."""
        return minio_client(self.s3[site_id])

    def gcs_client(self):
        if self.gcs is None:
            raise RuntimeError("no GCS emulator is running")
        return self.gcs.client()

    def create_buckets(self, sites: Mapping[str, Site], object_lock: Mapping[str, bool]) -> None:
        """Create each site's bucket (object lock where its policy requires it); idempotent."""
        for site_id, site in sites.items():
            bucket = site.object_store.bucket
            if site.object_store.type == "s3":
                client = self.minio(site_id)
                with _credentials_checked(site_id, self.store_url(site_id), " (bucket setup)"):
                    if not client.bucket_exists(bucket):
                        client.make_bucket(bucket, object_lock=bool(object_lock.get(site_id)))
                    if site_id in self.rules and not self.external:
                        client.set_bucket_policy(
                            bucket, json.dumps(seaweedfs_bucket_policy(self.rules[site_id]))
                        )
            else:
                client = self.gcs_client()
                if client.lookup_bucket(bucket) is None:
                    created = client.bucket(bucket)
                    created.versioning_enabled = True
                    client.create_bucket(created)

    def put_file(self, site: Site, key: str, path: Path, content_type: str = "text/csv") -> None:
        """Upload a local file into the site's own bucket."""
        data = path.read_bytes()
        self.minio(site.id).put_object(
            site.object_store.bucket, key, io.BytesIO(data), len(data), content_type=content_type
        )

    def get_bytes(self, site: Site, key: str) -> bytes | None:
        """An object of the site's bucket, or None when it does not exist."""
        if site.object_store.type == "gcs":
            blob = self.gcs_client().bucket(site.object_store.bucket).get_blob(key)
            return None if blob is None else blob.download_as_bytes()
        from minio.error import S3Error

        try:
            resp = self.minio(site.id).get_object(site.object_store.bucket, key)
        except S3Error as exc:
            if exc.code in {"NoSuchKey", "NoSuchBucket"}:
                return None
            raise
        try:
            return resp.read()
        finally:
            resp.close()
            resp.release_conn()

    def list_keys(self, site: Site, prefix: str = "") -> list[str]:
        """Keys in the site's bucket under `prefix` (latest versions), sorted."""
        if site.object_store.type == "gcs":
            client = self.gcs_client()
            return sorted(
                b.name for b in client.list_blobs(site.object_store.bucket, prefix=prefix)
            )
        objects = self.minio(site.id).list_objects(
            site.object_store.bucket, prefix=prefix, recursive=True
        )
        return sorted(o.object_name for o in objects)

    def save_state(self, sites: Mapping[str, Site], state_dir: Path) -> int:
        """Mirror the buckets of `sites` into `state_dir/<s3|gcs>/<bucket>/<key>`; returns the
        objects saved.

        Each kind's folder is written fresh beside the old one and swapped in, so an
        interrupted save keeps the old mirror and leaves no `.tmp` folder. A store that does
        not answer keeps its bucket's previous mirror; `unsaved` names it and why. Folders
        of `state_dir` other than the mirrored kinds (the S3 servers' data) are not touched.
        """
        kinds = {STATE_GCS if s.object_store.type == "gcs" else STATE_S3 for s in sites.values()}
        tmps = {kind: state_dir / f"{kind}.tmp" for kind in kinds}
        self.unsaved = {}
        count = 0
        try:
            for tmp in tmps.values():
                _rmtree(tmp)
                tmp.mkdir(parents=True)
            for site in sites.values():
                kind = STATE_GCS if site.object_store.type == "gcs" else STATE_S3
                target_root = tmps[kind] / site.object_store.bucket
                try:
                    saved = self._mirror_bucket(site, target_root)
                except STORE_ERRORS as exc:
                    _rmtree(target_root)
                    previous = state_dir / kind / site.object_store.bucket
                    if previous.is_dir():
                        shutil.copytree(previous, target_root)
                    self.unsaved[site.id] = f"{self.describe(site.id)} did not answer ({exc})"
                    continue
                count += saved
            for kind, tmp in tmps.items():
                final, old = state_dir / kind, state_dir / f"{kind}.old"
                _rmtree(old)
                if final.exists():
                    final.rename(old)
                tmp.rename(final)
                _rmtree(old)
        finally:
            for tmp in tmps.values():
                _rmtree(tmp)
        return count

    def _mirror_bucket(self, site: Site, root: Path) -> int:
        count = 0
        for key in self.list_keys(site):
            data = self.get_bytes(site, key)
            if data is None:
                continue
            target = root / key
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
            count += 1
        return count

    def store_url(self, site_id: str) -> str:
        """`s3://host:port` of the site's store (or the GCS emulator's URL)."""
        server = self.s3.get(site_id)
        if server is not None:
            return f"s3://{server.endpoint}"
        return self.gcs.url if self.gcs is not None else "(no store)"

    def describe(self, site_id: str) -> str:
        """`site X's object store (s3://host:port)` for messages."""
        server = self.s3.get(site_id)
        if server is not None:
            return f"site {site_id}'s object store (s3://{server.endpoint})"
        if self.gcs is not None:
            return f"site {site_id}'s object store ({self.gcs.url})"
        return f"site {site_id}'s object store"

    def mirrored(self, sites: Mapping[str, Site], fresh: bool = False) -> dict[str, Site]:
        """The sites whose bucket state lives in the mirror: all but S3 servers with a data
        folder of their own (`data_root`); with `fresh`, also those whose data folder was new
        at start (a mirror written before data folders existed is restored into them once)."""
        out = {}
        for sid, site in sites.items():
            server = self.s3.get(sid)
            persistent = isinstance(server, S3Server) and server.data_dir is not None
            if not persistent or (fresh and sid in self.fresh):
                out[sid] = site
        return out

    def restore_state(self, sites: Mapping[str, Site], state_dir: Path) -> int:
        """Upload a mirror written by `save_state` into the (empty) buckets; returns count."""
        count = 0
        for site in sites.values():
            kind = STATE_GCS if site.object_store.type == "gcs" else STATE_S3
            root = state_dir / kind / site.object_store.bucket
            if not root.is_dir():
                continue
            for path in sorted(p for p in root.rglob("*") if p.is_file()):
                key = path.relative_to(root).as_posix()
                data = path.read_bytes()
                if site.object_store.type == "gcs":
                    bucket = self.gcs_client().bucket(site.object_store.bucket)
                    bucket.blob(key).upload_from_string(data)
                else:
                    self.minio(site.id).put_object(
                        site.object_store.bucket,
                        key,
                        io.BytesIO(data),
                        len(data),
                        metadata={"x-amz-sdk-checksum-algorithm": "CRC32"},
                    )
                count += 1
        return count


def _rmtree(path: Path) -> None:
    import shutil

    if path.exists():
        shutil.rmtree(path)
