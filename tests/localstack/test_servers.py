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
