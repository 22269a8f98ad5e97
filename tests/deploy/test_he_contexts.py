"""`fedpipe doctor` under protection he: each he site holds the secret CKKS context, the
coordinator only the public one, all from one setup; a failure names the site and object.
The logic over in-memory readers, then through the S3 and GCS stand-ins."""

from __future__ import annotations

import io

import pytest

from components.he.ckks import HeError
from components.he.keys import new_federation_keys
from components.he.wire import COORDINATOR_CONTEXT_KEY, SITE_CONTEXT_KEY
from pipelines.deploy.he_contexts import Readers, he_checks, he_sites, store_readers
from tests.support.federation import make_coordinator, make_policy, new_site, unique


@pytest.fixture(scope="module")
def setups():
    return new_federation_keys(), new_federation_keys()


def _sites(endpoint: str = "127.0.0.1:1"):
    return [new_site(s, endpoint=endpoint).site for s in ("he-a", "he-b")]


def _readers(site_objects: dict, coordinator_objects: dict) -> Readers:
    return Readers(
        lambda site, key: site_objects.get((site.id, key)),
        lambda key: coordinator_objects.get(key),
    )


def _lines(checks) -> list[str]:
    return [c.line() for c in checks]


def test_every_context_in_place_passes(setups):
    keys, _ = setups
    sites, coordinator = _sites(), make_coordinator("coord-bucket")
    readers = _readers(
        {(s.id, SITE_CONTEXT_KEY): keys.site for s in sites},
        {COORDINATOR_CONTEXT_KEY: keys.coordinator},
    )
    checks = he_checks(sites, coordinator, readers)
    assert all(c.ok for c in checks), _lines(checks)
    assert [c.name for c in checks] == [
        "he context he-a", "he context he-b", "he context coordinator", "he context id",
    ]  # fmt: skip
    bucket = sites[0].object_store.bucket
    assert checks[0].detail == f"s3://{bucket}/he/context.secret: secret context {keys.context_id}"
    assert checks[2].detail == (
        f"gs://coord-bucket/he/context.public: public context {keys.context_id}, no secret key"
    )


def test_a_missing_or_wrong_context_names_the_site_and_the_object(setups):
    keys, other = setups
    sites, coordinator = _sites(), make_coordinator("coord-bucket")
    a, b = sites
    readers = _readers(
        {(b.id, SITE_CONTEXT_KEY): keys.coordinator},  # a: nothing; b: the public copy
        {COORDINATOR_CONTEXT_KEY: keys.site, SITE_CONTEXT_KEY: keys.site},  # secret copies
    )
    lines = _lines(he_checks(sites, coordinator, readers))
    assert lines[0].startswith(
        f"FAIL  he context he-a: s3://{a.object_store.bucket}/he/context.secret is missing "
        "(its policy asks for he); fix: fedpipe he-setup --out DIR, then put "
        "DIR/he-a/he-context.secret"
    )
    assert lines[1].startswith(
        f"FAIL  he context he-b: s3://{b.object_store.bucket}/he/context.secret: this context "
        "has no secret key; a site needs the sites' copy"
    )
    assert lines[2].startswith(
        "FAIL  he context coordinator secret key: gs://coord-bucket/he/context.secret exists: "
        "the coordinator must not hold the sites' secret context"
    )
    assert lines[3].startswith(
        "FAIL  he context coordinator: gs://coord-bucket/he/context.public: this context holds "
        "the secret key; the coordinator needs the public copy"
    )
    assert len(lines) == 4  # no id comparison when a holder is unusable
    # every holder readable, two setups: named per holder
    mixed = _readers(
        {(a.id, SITE_CONTEXT_KEY): keys.site, (b.id, SITE_CONTEXT_KEY): other.site},
        {COORDINATOR_CONTEXT_KEY: keys.coordinator},
    )
    (last,) = [c for c in he_checks(sites, coordinator, mixed) if not c.ok]
    assert last.name == "he context id" and f"he-b: {other.context_id}" in last.detail


def test_no_he_policy_no_check():
    sites = {s.id: s for s in _sites()}
    assert he_sites(sites, lambda _: "none") == []
    assert he_checks([], make_coordinator("coord-bucket"), _readers({}, {})) == []
    assert [s.id for s in he_sites(sites, lambda sid: "he" if sid == "he-b" else "none")] == [
        "he-b"
    ]


@pytest.mark.integration
def test_through_the_store_stand_ins(monkeypatch, s3_server, minio, gcs, setups):
    """The readers doctor builds (site S3 keys from the environment, the coordinator's GCS
    emulator): all in place passes; a site whose object is gone fails naming it; a site
    without keys fails naming the secret to set."""
    keys, _ = setups
    monkeypatch.setenv("FEDPIPE_S3_ACCESS_KEY", s3_server.access_key)
    monkeypatch.setenv("FEDPIPE_S3_SECRET_KEY", s3_server.secret_key)
    monkeypatch.delenv("FEDPIPE_ENDPOINT_OVERRIDES", raising=False)
    policy = make_policy()
    sites = [new_site(s, endpoint=s3_server.endpoint, policy=policy).site for s in ("he-a", "he-b")]
    for site in sites:
        minio.make_bucket(site.object_store.bucket)
        minio.put_object(
            site.object_store.bucket, SITE_CONTEXT_KEY, io.BytesIO(keys.site), len(keys.site)
        )
    bucket = gcs.create_bucket(unique("coord"))
    bucket.blob(COORDINATOR_CONTEXT_KEY).upload_from_string(keys.coordinator)
    coordinator = make_coordinator(bucket.name)
    checks = he_checks(sites, coordinator, store_readers(coordinator))
    assert all(c.ok for c in checks) and len(checks) == 4, _lines(checks)
    minio.remove_object(sites[1].object_store.bucket, SITE_CONTEXT_KEY)
    monkeypatch.delenv("FEDPIPE_S3_ACCESS_KEY")
    lines = _lines(he_checks(sites, coordinator, store_readers(coordinator)))
    assert lines[0].startswith("FAIL  he context he-a: cannot read s3://")
    assert "secret S3_ACCESS_KEY not found" in lines[0]
    monkeypatch.setenv("FEDPIPE_S3_ACCESS_KEY", s3_server.access_key)
    lines = _lines(he_checks(sites, coordinator, store_readers(coordinator)))
    assert lines[0].startswith("ok    he context he-a")
    assert lines[1].startswith(
        f"FAIL  he context he-b: s3://{sites[1].object_store.bucket}/he/context.secret is missing"
    )


class _Blob:
    def __init__(self, data: bytes, *, declare: bool) -> None:
        self.data, self.size = data, (len(data) if declare else None)
        self.most_read = 0  # the largest download served, in bytes

    def download_as_bytes(self, start: int | None = None, end: int | None = None) -> bytes:
        served = self.data[start or 0 : None if end is None else end + 1]  # GCS: end inclusive
        self.most_read = max(self.most_read, len(served))
        return served


class _Gcs:
    def __init__(self, objects: dict[str, _Blob]) -> None:
        self.objects = objects

    def bucket(self, name: str) -> _Gcs:
        self.name = name
        return self

    def get_blob(self, key: str) -> _Blob | None:
        return self.objects.get(key)


@pytest.mark.parametrize("declare", [True, False])
def test_an_oversized_coordinator_object_is_refused_not_read_whole(monkeypatch, setups, declare):
    """Doctor's GCS reader has the bound `components.he.keys.coordinator_context` has: an
    object above it is refused naming the object, its size and the limit."""
    import components.common.object_store as object_store
    from components.he.keys import MAX_CONTEXT_BYTES

    keys, _ = setups
    big = _Blob(b"\0" * (MAX_CONTEXT_BYTES + 1), declare=declare)
    gcs = _Gcs({COORDINATOR_CONTEXT_KEY: big})
    monkeypatch.setattr(object_store, "coordinator_gcs_client", lambda coordinator: gcs)
    sites, coordinator = _sites(), make_coordinator("coord-bucket")
    readers = store_readers(coordinator)
    assert readers.coordinator(SITE_CONTEXT_KEY) is None
    checks = he_checks(
        sites, coordinator, Readers(lambda site, key: keys.site, readers.coordinator)
    )
    (failed,) = [c for c in checks if not c.ok]
    held = f"{MAX_CONTEXT_BYTES + 1} bytes" if declare else f"more than {MAX_CONTEXT_BYTES} bytes"
    assert failed.line().startswith(
        "FAIL  he context coordinator: cannot read gs://coord-bucket: HeError: "
        f"gs://coord-bucket/he/context.public is {held}, more than a CKKS context "
        f"({MAX_CONTEXT_BYTES} bytes)"
    )
    gcs.objects[COORDINATOR_CONTEXT_KEY] = _Blob(keys.coordinator, declare=declare)
    assert readers.coordinator(COORDINATOR_CONTEXT_KEY) == keys.coordinator


@pytest.mark.parametrize("declare", [True, False])
def test_the_coordinator_task_reads_its_context_bounded_too(declare):
    """`coordinator_context` (the aggregate task's read) and doctor share one bounded read: an
    object GCS reports no size for used to be downloaded whole before it was refused."""
    from components.he.keys import MAX_CONTEXT_BYTES, coordinator_context

    big = _Blob(b"\0" * (MAX_CONTEXT_BYTES + 1), declare=declare)
    gcs = _Gcs({COORDINATOR_CONTEXT_KEY: big})
    with pytest.raises(
        HeError, match=r"gs://coord-bucket/he/context.public is .* bytes, more than"
    ):
        coordinator_context(gcs.bucket("coord-bucket"))
    assert big.most_read <= MAX_CONTEXT_BYTES + 1
