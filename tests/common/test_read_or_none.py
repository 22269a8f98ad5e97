"""`read_or_none` with a limit refuses an oversized object whole (naming bucket, key, size and
limit) instead of cutting it off; its callers turn that into their own refusals."""

from __future__ import annotations

import pytest

from components.common.create_only import ObjectTooLargeError, read_or_none


class _Response:
    def __init__(self, body: bytes, *, declare: bool) -> None:
        self.body = body
        self.headers = {"Content-Length": str(len(body))} if declare else {}
        self.closed = self.released = False

    def read(self, amt: int | None = None) -> bytes:
        return self.body if amt is None else self.body[:amt]

    def close(self) -> None:
        self.closed = True

    def release_conn(self) -> None:
        self.released = True


class _Client:
    def __init__(self, objects: dict[str, bytes], *, declare: bool = True) -> None:
        self.objects, self.declare, self.responses = objects, declare, []

    def get_object(self, bucket: str, key: str) -> _Response:
        from minio.error import S3Error

        if key not in self.objects:
            raise S3Error(None, "NoSuchKey", "missing", key, "req", "host")  # type: ignore[arg-type]
        response = _Response(self.objects[key], declare=self.declare)
        self.responses.append(response)
        return response


@pytest.mark.parametrize("declare", [True, False])
def test_an_object_above_the_limit_is_refused_whole(declare):
    client = _Client({"small": b"x" * 10, "big": b"y" * 11}, declare=declare)
    assert read_or_none(client, "b", "small", 10) == b"x" * 10  # exactly the limit: whole
    assert read_or_none(client, "b", "absent", 10) is None
    assert read_or_none(client, "b", "big") == b"y" * 11  # no limit: whole
    with pytest.raises(ObjectTooLargeError) as refused:
        read_or_none(client, "b", "big", 10)
    held = "11 bytes" if declare else "more than 10 bytes"
    assert str(refused.value).startswith(f"s3://b/big is {held}, above the 10-byte limit")
    assert (refused.value.bucket, refused.value.key, refused.value.limit) == ("b", "big", 10)
    assert all(r.closed and r.released for r in client.responses)


def test_an_oversized_he_context_names_the_site_object_and_setup():
    from components.he.ckks import HeError
    from components.he.keys import MAX_CONTEXT_BYTES, site_context
    from components.he.wire import SITE_CONTEXT_KEY
    from tests.support.federation import new_site

    site = new_site("he-a", endpoint="127.0.0.1:1").site
    client = _Client({SITE_CONTEXT_KEY: b"\0" * (MAX_CONTEXT_BYTES + 1)})
    with pytest.raises(HeError) as refused:
        site_context(site, client)
    assert str(refused.value).startswith(
        f"site he-a: s3://{site.object_store.bucket}/{SITE_CONTEXT_KEY}: "
        f"{MAX_CONTEXT_BYTES + 1} bytes, more than a CKKS context ({MAX_CONTEXT_BYTES} bytes)"
    )
    assert "fedpipe he-setup" in str(refused.value)


def test_an_oversized_audit_record_rejects_the_update_naming_the_site():
    from components.aggregation.collect import MAX_AUDIT_BYTES, _get_or_none
    from components.aggregation.verify import UpdateRejected

    client = _Client({"rec": b"{" * (MAX_AUDIT_BYTES + 1)})
    with pytest.raises(UpdateRejected) as refused:
        _get_or_none(client, "b", "rec", "site-a")
    assert str(refused.value).startswith(
        f"site site-a: update rejected: audit record: s3://b/rec is {MAX_AUDIT_BYTES + 1} bytes"
    )


def test_an_oversized_admission_refuses_the_masked_update_naming_the_site():
    from components.audit.events import admission_key
    from components.domain.canonical import policy_digest
    from components.secagg.errors import SecAggError
    from components.secagg_stages.verify import MAX_RECORD_BYTES, site_records
    from tests.support.federation import new_site

    kit = new_site("sa-a", endpoint="127.0.0.1:1")
    key = admission_key("run-1", kit.site.id, policy_digest(kit.policy))
    client = _Client({key: b"{" * (MAX_RECORD_BYTES + 1)})
    with pytest.raises(SecAggError) as refused:
        site_records(
            client,
            {},
            site=kit.site,
            policy=kit.policy,
            run_id="run-1",
            round_index=1,
            manifest_sha256="0" * 64,
        )
    assert str(refused.value).startswith(
        f"site sa-a: audit record: s3://{kit.site.object_store.bucket}/{key} is "
        f"{MAX_RECORD_BYTES + 1} bytes, above the {MAX_RECORD_BYTES}-byte limit"
    )
