"""Audit chains written create-only to real S3-compatible and GCS emulator servers."""

from __future__ import annotations

import io
import itertools

import pytest

from components.audit.records import Record
from components.audit.store import (
    ChainExistsError,
    ChainWriter,
    GcsStore,
    S3Store,
    read_chain,
    record_key,
)
from components.audit.verify import verify_run
from components.common.manifest import generate_keypair
from tests.support.federation import unique

pytestmark = pytest.mark.integration

RUN = "run-audit"


def clock():
    ticks = itertools.count()
    return lambda: f"2026-12-02T11:00:{next(ticks):02d}Z"


@pytest.fixture()
def stores(minio, gcs):
    bucket = unique("site-a")
    minio.make_bucket(bucket)
    return S3Store(minio, bucket), GcsStore(gcs.create_bucket(unique("coord")))


def write_run(site_store, coord_store, site_key, coord_key):
    now = clock()
    site = ChainWriter(site_store, RUN, "site/a", site_key, now, checkpoint_every=2)
    site.append("admission", {"round": 0, "summary": "accepted"})
    export = site.append("export", {"round": 1, "summary": "update"})
    coord = ChainWriter(coord_store, RUN, "coordinator", coord_key, now, checkpoint_every=2)
    coord.append("initialize", {"round": 0})
    coord.append("aggregate", {"round": 1}, refs=[export.hash])
    return export


def test_chains_in_both_stores_verify_and_positions_are_create_only(stores):
    site_store, coord_store = stores
    (site_priv, site_pub), (coord_priv, coord_pub) = generate_keypair(), generate_keypair()
    export = write_run(site_store, coord_store, site_priv, coord_priv)
    chains = {
        "site/a": read_chain(site_store, RUN, "site/a", site_pub),
        "coordinator": read_chain(coord_store, RUN, "coordinator", coord_pub),
    }
    assert [len(c.checkpoints) for c in chains.values()] == [1, 1]  # every 2 records
    verdict = verify_run(chains)
    assert verdict.ok, verdict.problems
    # a second writer for an existing position is refused on both stores
    with pytest.raises(ChainExistsError, match="already exists"):
        site_store.put_new(record_key(RUN, "site/a", 1), export.to_json())
    with pytest.raises(ChainExistsError, match="already exists"):
        coord_store.put_new(record_key(RUN, "coordinator", 0), export.to_json())


def test_an_object_replaced_behind_the_writer_is_caught(stores, minio):
    site_store, coord_store = stores
    (site_priv, site_pub), (coord_priv, coord_pub) = generate_keypair(), generate_keypair()
    write_run(site_store, coord_store, site_priv, coord_priv)
    key = record_key(RUN, "site/a", 0)
    altered = Record.from_json(site_store.get(key)).to_json().replace(b"accepted", b"refused")
    minio.put_object(site_store.bucket, key, io.BytesIO(altered), len(altered))  # no lock here
    chains = {
        "site/a": read_chain(site_store, RUN, "site/a", site_pub),
        "coordinator": read_chain(coord_store, RUN, "coordinator", coord_pub),
    }
    problems = verify_run(chains).problems
    assert problems[0].startswith("site/a: record #0 (admission, round 0) at position 0: signature")
    assert any("record #1 (export, round 1) at position 1: does not link" in p for p in problems)
