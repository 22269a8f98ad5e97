"""SecAgg+ through real object stores (S3-compatible site buckets, the GCS emulator for the
coordinator): a round with a dropout, create-only steps, secrets only in the site's bucket."""

from __future__ import annotations

import numpy as np
import pytest

from components.secagg import exchange
from components.secagg.errors import SecAggError
from components.secagg.keys import ed25519_from
from components.secagg.quantize import Quantizer
from components.secagg.rand import seeded_random
from tests.support.federation import unique

pytestmark = pytest.mark.integration

RUN, ROUND, P = "run-x", 1, 256


def test_a_round_through_site_buckets_and_the_coordinator_bucket(minio, gcs) -> None:
    rand = seeded_random("exchange")
    ids = ["site-a", "site-b", "site-c", "site-d"]
    secret = {s: ed25519_from(rand) for s in ids}
    keys = {s: k.public_key() for s, k in secret.items()}
    coordinator_key = ed25519_from(rand)
    pub = coordinator_key.public_key()
    stores = {}
    for s in ids:
        bucket = unique(s)
        minio.make_bucket(bucket)
        stores[s] = exchange.SiteBucket(minio, bucket, s)
    coord = gcs.create_bucket(unique("coord"))

    for s in ids:
        exchange.site_keys(stores[s], RUN, ROUND, secret[s], seeded_random(f"k-{s}"))
    roster_sites = exchange.coordinator_roster(
        coord, stores, RUN, ROUND, keys, 3, 3, coordinator_key, rand
    )
    assert roster_sites == ids
    for s in ids:
        assert exchange.site_share(stores[s], coord, RUN, ROUND, pub, keys) == 3
    assert exchange.coordinator_relay(coord, stores, RUN, ROUND) == 12
    q = Quantizer.for_sum(4, 0.1)
    vectors = {s: np.random.default_rng(i).normal(scale=0.02, size=P) for i, s in enumerate(ids)}
    for s in ids[:3]:  # site-d drops after sharing
        exchange.site_mask(stores[s], coord, RUN, ROUND, q.quantize(vectors[s]), 32, pub, keys)
    total, survivors = exchange.coordinator_request(
        coord, stores, RUN, ROUND, P, 32, coordinator_key
    )
    assert survivors == ids[:3]
    for s in survivors:
        exchange.site_answer(stores[s], coord, RUN, ROUND, pub, keys)
    result = exchange.coordinator_unmask(coord, stores, RUN, ROUND, total, survivors, 32)
    assert np.array_equal(result, sum(q.quantize(vectors[s]) for s in survivors))

    # the secrets never reached the coordinator's bucket; only published objects are there
    names = sorted(b.name for b in coord.list_blobs())
    assert not any("state" in n for n in names)
    assert {n.rsplit("/", 1)[-1] for n in names} >= {"roster.json", "request.json"}
    # each step is create-only: no second answer, no second masked vector
    with pytest.raises(SecAggError, match="already answered"):
        exchange.site_answer(stores["site-a"], coord, RUN, ROUND, pub, keys)
    with pytest.raises(FileExistsError):
        exchange.site_mask(
            stores["site-a"], coord, RUN, ROUND, q.quantize(vectors["site-a"]), 32, pub, keys
        )
