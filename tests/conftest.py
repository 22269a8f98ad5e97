"""Shared fixtures: real object-store servers on 127.0.0.1 and child-process reaping."""

from __future__ import annotations

import os
from collections.abc import Iterator

import psutil
import pytest

from pipelines.localstack.servers import GcsServer, S3Server, minio_client
from pipelines.simulate.reaper import exit_now_if_tff_loaded

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    """A SeaweedFS S3 server on free ports for the whole session."""
    with S3Server() as server:
        yield server


@pytest.fixture()
def minio(s3_server: S3Server):
    """A real `minio.Minio` client talking to the session's S3-compatible server."""
    return minio_client(s3_server)


@pytest.fixture(scope="session")
def gcs_server() -> Iterator[GcsServer]:
    """fake-gcs-server (memory backend) on a free port for the whole session."""
    with GcsServer() as server:
        yield server


@pytest.fixture()
def gcs(gcs_server: GcsServer):
    """A google-cloud-storage client bound to the session's emulator."""
    return gcs_server.client()


_EXIT_STATUS: list[int] = []


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Reap leftover children (TFF's worker binary holds pipes open); remember the status."""
    for child in psutil.Process().children(recursive=True):
        try:
            child.kill()
        except psutil.NoSuchProcess:
            pass
    _EXIT_STATUS.append(int(session.exitstatus))


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config: pytest.Config) -> None:
    """Once pytest has reported, a process that loaded TensorFlow Federated ends without the
    interpreter's teardown, where TFF's C++ executor can crash it and turn a green run red
    (`exit_now_if_tff_loaded`); the exit status is pytest's own."""
    if _EXIT_STATUS:
        exit_now_if_tff_loaded(_EXIT_STATUS[-1])
