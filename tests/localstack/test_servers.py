"""The local servers are real processes speaking the real protocols."""

from __future__ import annotations

import io

import pytest

pytestmark = pytest.mark.integration


def test_s3_server_round_trip_with_minio_client(minio) -> None:
    minio.make_bucket("roundtrip")
    minio.put_object("roundtrip", "a/b.bin", io.BytesIO(b"hello"), 5)
    assert minio.get_object("roundtrip", "a/b.bin").read() == b"hello"


def test_gcs_emulator_create_only_precondition(gcs) -> None:
    from google.api_core.exceptions import PreconditionFailed

    bucket = gcs.create_bucket("roundtrip-gcs")
    blob = bucket.blob("v1")
    blob.upload_from_string(b"one", if_generation_match=0)
    with pytest.raises(PreconditionFailed):
        bucket.blob("v1").upload_from_string(b"two", if_generation_match=0)
    assert bucket.blob("v1").download_as_bytes() == b"one"


def _read(client, bucket: str, key: str, **kw) -> bytes:
    response = client.get_object(bucket, key, **kw)
    try:
        return response.read()
    finally:
        response.close()
        response.release_conn()


def test_s3_server_object_lock_create_only_and_sse_for_real(s3_server, minio) -> None:
    """COMPLIANCE retention refuses delete and shortening; `If-None-Match: *` refuses a second
    write (412) and the first object stays; SSE-S3 objects are not plain text on disk."""
    import datetime as dt

    from minio.commonconfig import COMPLIANCE
    from minio.error import S3Error
    from minio.retention import Retention
    from minio.sse import SseS3

    from components.common.create_only import ObjectExistsError, put_create_only

    bucket = "locked-fl"
    minio.make_bucket(bucket, object_lock=True)
    secret = b"plain-text-marker-4711 that must not be stored as is"
    key = "updates/run-1/round-0001/site-a.npz"
    first = put_create_only(minio, bucket, key, secret, sse=SseS3())
    until = dt.datetime.now(dt.UTC).replace(microsecond=0) + dt.timedelta(days=30)
    minio.set_object_retention(
        bucket, key, Retention(COMPLIANCE, until), version_id=first.version_id
    )

    with pytest.raises(ObjectExistsError):  # the server answered 412
        put_create_only(minio, bucket, key, b"second", sse=SseS3())
    with pytest.raises(S3Error) as deleted:
        minio.remove_object(bucket, key, version_id=first.version_id)
    assert deleted.value.response.status == 403
    with pytest.raises(S3Error) as shortened:
        minio.set_object_retention(
            bucket,
            key,
            Retention(COMPLIANCE, until - dt.timedelta(days=29)),
            version_id=first.version_id,
        )
    assert shortened.value.response.status == 403
    assert _read(minio, bucket, key, version_id=first.version_id) == secret
    assert minio.stat_object(bucket, key).version_id == first.version_id

    on_disk = b"".join(
        p.read_bytes() for p in s3_server.data_path.rglob("*") if p.is_file() and p.stat().st_size
    )
    assert secret not in on_disk


def test_s3_server_refuses_wrong_secret_and_anonymous(s3_server, minio) -> None:
    import urllib.error
    import urllib.request

    from minio.error import S3Error

    from pipelines.localstack.servers import minio_client

    minio.make_bucket("auth-fl")
    minio.put_object("auth-fl", "x", io.BytesIO(b"x"), 1)
    wrong = minio_client(s3_server, secret_key=s3_server.secret_key + "-wrong")
    with pytest.raises(S3Error) as refused:
        _read(wrong, "auth-fl", "x")
    assert (refused.value.code, refused.value.response.status) == ("SignatureDoesNotMatch", 403)
    with pytest.raises(urllib.error.HTTPError) as anonymous:
        urllib.request.urlopen(f"{s3_server.url}/auth-fl/x", timeout=5)
    assert anonymous.value.code == 403


def test_s3_server_stop_kills_it_and_removes_its_folder() -> None:
    from pipelines.localstack.servers import S3Server, start_servers, stop_servers

    servers = [S3Server(), S3Server()]
    start_servers(servers)
    roots = [s.root for s in servers]
    procs = [s.proc for s in servers]
    assert all(r is not None and r.is_dir() for r in roots)
    stop_servers(servers)
    assert all(p is not None and p.poll() is not None for p in procs)
    assert not any(r.exists() for r in roots if r is not None)
    ports = [p for s in servers for p in [s.port, *s.ports.values()]]
    from pathlib import Path

    assert not [f for port in ports for f in Path("/tmp").glob(f"seaweedfs-*-{port}.sock")]


def test_listen_ports_keep_out_of_the_ephemeral_range() -> None:
    from pipelines.localstack.servers import listen_port_range

    assert listen_port_range((32768, 60999)) == range(10000, 32768)  # Linux's default
    assert listen_port_range((10500, 60000)) == range(60001, 65536)  # too few below
    assert listen_port_range((10500, 65000)) == range(1024, 65536)  # too few either side


def test_free_ports_are_distinct_and_not_ephemeral() -> None:
    from pipelines.localstack.servers import _ephemeral_range, free_port, listen_port_range

    allowed = listen_port_range(_ephemeral_range())
    ports = [free_port() for _ in range(300)]  # 30 SeaweedFS servers hold 240 listeners
    assert len(set(ports)) == len(ports)
    assert all(p in allowed for p in ports)


def test_a_server_whose_port_was_taken_meanwhile_starts_on_new_ports() -> None:
    import socket

    from pipelines.localstack.servers import S3Server, minio_client, start_servers

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = taken.getsockname()[1]
        server = S3Server(port=busy)  # as if another process bound it after it was picked
        try:
            start_servers([server])
            assert server.port != busy
            assert minio_client(server).list_buckets() == []
        finally:
            server.stop()


@pytest.mark.slow
def test_one_server_holds_more_buckets_than_the_suite_creates() -> None:
    """Every bucket takes a SeaweedFS volume; at the former `volume_max` of 200 the suite's one
    server answered 500 to every put after its 200th bucket (CI failed 37 tests that way)."""
    from concurrent.futures import ThreadPoolExecutor

    from pipelines.localstack.servers import S3Server, minio_client

    with S3Server() as server:
        client = minio_client(server)

        def bucket_with_an_object(i: int) -> None:
            client.make_bucket(f"many-{i:04d}")
            client.put_object(f"many-{i:04d}", "k", io.BytesIO(b"x"), 1)

        with ThreadPoolExecutor(max_workers=8) as pool:
            list(pool.map(bucket_with_an_object, range(320)))
        assert len(client.list_buckets()) == 320
