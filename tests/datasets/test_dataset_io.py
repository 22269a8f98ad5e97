"""Reading site tables from file:// and from a real S3-compatible server via `minio`."""

from __future__ import annotations

import io
import json

import numpy as np
import pandas as pd
import pytest
import urllib3
from minio import Minio

from components.datasets.features import DataError
from components.datasets.io import (
    parse_uri,
    read_site_table,
    site_client_factory,
    write_site_table,
)
from components.datasets.prepare import load_frame, table_to_csv_bytes
from components.domain.models import Site
from pipelines.config.loader import contract_by_name
from pipelines.localstack.servers import free_port
from tests.support.site_inputs import site_json


def test_parse_uri():
    assert parse_uri("s3://bkt/data/train.csv", "s").key == "data/train.csv"
    assert parse_uri("file:///tmp/x%20y.csv", "s").key == "/tmp/x y.csv"
    for bad in ("s3://bkt", "s3:///key", "http://h/x.csv", "train.csv"):
        with pytest.raises(DataError, match="site s: data check 'uri' failed"):
            parse_uri(bad, "s")


def test_file_table_round_trip(tmp_path):
    frame = load_frame(contract_by_name("breast_cancer")).head(20)
    uri = (tmp_path / "t.csv").as_uri()
    write_site_table(table_to_csv_bytes(frame), uri, None, "site-a")
    pd.testing.assert_frame_equal(read_site_table(uri, None, "site-a"), frame)


@pytest.mark.parametrize(
    ("content", "check"),
    [(None, "readable"), (b"", "not_empty"), (b"\n\n", "not_empty"), (b"\xff\xfe\x00a", "csv")],
)
def test_file_errors_name_site_and_check(tmp_path, content, check):
    path = tmp_path / "t.csv"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(DataError) as info:
        read_site_table(path.as_uri(), None, "site-a")
    assert info.value.check == check and "site site-a" in str(info.value)


@pytest.mark.integration
def test_s3_round_trip_and_errors(minio):
    minio.make_bucket("io-site-fl")
    frame = load_frame(contract_by_name("digits")).head(30)
    uri = "s3://io-site-fl/data/train.csv"
    write_site_table(table_to_csv_bytes(frame), uri, lambda: minio, "io-site")
    pd.testing.assert_frame_equal(read_site_table(uri, lambda: minio, "io-site"), frame)

    with pytest.raises(DataError, match=r"site io-site: .*'readable'.*NoSuchKey"):
        read_site_table("s3://io-site-fl/data/missing.csv", lambda: minio, "io-site")
    with pytest.raises(DataError, match=r"site io-site: .*'readable'.*NoSuchBucket"):
        read_site_table("s3://no-such-bucket-fl/x.csv", lambda: minio, "io-site")
    minio.put_object("io-site-fl", "data/empty.csv", io.BytesIO(b""), 0)
    with pytest.raises(DataError, match="'not_empty'"):
        read_site_table("s3://io-site-fl/data/empty.csv", lambda: minio, "io-site")


@pytest.mark.integration
def test_unreachable_endpoint_is_a_clear_error():
    port = free_port()  # nobody listens here
    client = Minio(
        f"127.0.0.1:{port}",
        access_key="a",
        secret_key="b",
        secure=False,
        http_client=urllib3.PoolManager(retries=urllib3.Retry(total=0)),
    )
    with pytest.raises(DataError, match=r"site far-site: .*'readable'.*endpoint unreachable"):
        read_site_table("s3://far-site-fl/train.csv", lambda: client, "far-site")


@pytest.mark.integration
@pytest.mark.parametrize("scheme", ["", "http://"])
def test_site_client_factory_uses_override_and_secrets(minio, s3_server, monkeypatch, scheme):
    if not minio.bucket_exists("factory-site-fl"):
        minio.make_bucket("factory-site-fl")
    frame = pd.DataFrame({"x": np.arange(3) + 0.5, "label": [0, 1, 0]})
    minio.put_object(
        "factory-site-fl",
        "data/train.csv",
        io.BytesIO(table_to_csv_bytes(frame)),
        len(table_to_csv_bytes(frame)),
    )
    site = Site.parse_raw(site_json("factory-site"))
    monkeypatch.setenv(
        "FEDPIPE_ENDPOINT_OVERRIDES", json.dumps({"factory-site": scheme + s3_server.endpoint})
    )
    monkeypatch.setenv("FEDPIPE_S3_ACCESS_KEY__FACTORY_SITE", s3_server.access_key)
    monkeypatch.setenv("FEDPIPE_S3_SECRET_KEY__FACTORY_SITE", s3_server.secret_key)
    factory = site_client_factory(site)
    got = read_site_table(site.data.uri, factory, site.id)
    pd.testing.assert_frame_equal(got, frame)
