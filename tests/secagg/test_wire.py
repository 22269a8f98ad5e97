"""SecAgg+ wire formats: every message survives a JSON round trip with its signature valid,
a site's state restores between steps, and the whole round runs through bytes only."""

from __future__ import annotations

import json

import numpy as np
import pytest

from components.secagg import wire
from components.secagg.errors import SecAggError, SignatureError
from components.secagg.graph import make_roster
from components.secagg.keys import ed25519_from
from components.secagg.quantize import Quantizer
from components.secagg.rand import seeded_random
from components.secagg.site import SiteSession
from components.secagg.unmask import make_request, unmask_sum

RUN = "run-w"


def test_a_round_through_bytes_with_state_restored_between_steps() -> None:
    rand = seeded_random("wire")
    ids = [f"s{i}" for i in range(5)]
    secret = {s: ed25519_from(rand) for s in ids}
    keys = {s: k.public_key() for s, k in secret.items()}
    coordinator = ed25519_from(rand)
    pub = coordinator.public_key()
    # step 1 (site task): keys; state to the site's bucket, advertisement published
    stored, published = {}, {}
    for s in ids:
        sess = SiteSession(RUN, 1, s, secret[s], seeded_random(f"w-{s}"))
        stored[s] = sess.state()
        published[s] = wire.dump_advertisement(sess.advertisement)
    # step 2 (coordinator): verify and sign the roster
    ads = {s: wire.load_advertisement(b) for s, b in published.items()}
    roster_bytes = wire.dump_roster(make_roster(RUN, 1, ads, keys, 4, 3, coordinator, rand))
    # step 3 (site task): shares out
    outbox = []
    for s in ids:
        sess = SiteSession.restore(stored[s], RUN, 1, s, seeded_random(f"w2-{s}"))
        sess.accept_roster(wire.load_roster(roster_bytes), pub, ads, keys)
        outbox += [wire.dump_share(x) for x in sess.make_shares()]
        stored[s] = sess.state()
    # step 4 (site task): shares in, mask, export
    q = Quantizer.for_sum(5, 0.1)
    vectors = {s: np.random.default_rng(i).normal(scale=0.02, size=300) for i, s in enumerate(ids)}
    exported = {}
    for s in ids:
        sess = SiteSession.restore(stored[s], RUN, 1, s)
        sess.accept_roster(wire.load_roster(roster_bytes), pub, ads, keys)
        sess.receive_shares([wire.load_share(b) for b in outbox if json.loads(b)["receiver"] == s])
        if s != "s2":  # s2 drops after sharing
            exported[s] = wire.dump_masked(sess.mask(q.quantize(vectors[s]), 32))
        stored[s] = sess.state()
    # step 5: request, answers, unmask
    masked = {s: wire.load_masked(b, 300, 32) for s, b in exported.items()}
    request_bytes = wire.dump_request(
        make_request(wire.load_roster(roster_bytes), sorted(masked), coordinator)
    )
    answers = []
    for s in sorted(masked):
        sess = SiteSession.restore(stored[s], RUN, 1, s)
        sess.accept_roster(wire.load_roster(roster_bytes), pub, ads, keys)
        answers.append(wire.dump_response(sess.respond(wire.load_request(request_bytes), pub)))
        stored[s] = sess.state()
    total = unmask_sum(
        wire.load_roster(roster_bytes), ads, masked, [wire.load_response(b) for b in answers], 32
    )
    expected = sum(q.quantize(vectors[s]) for s in masked)
    assert np.array_equal(total, expected)
    # the revealed kinds persisted: a second, contradicting request is refused after restore
    sess = SiteSession.restore(stored["s0"], RUN, 1, "s0")
    sess.accept_roster(wire.load_roster(roster_bytes), pub, ads, keys)
    contradicting = make_request(wire.load_roster(roster_bytes), ids, coordinator)
    with pytest.raises(SecAggError, match="already gave the other share of site.*s2"):
        sess.respond(contradicting, pub)


def test_tampered_or_foreign_objects_are_refused() -> None:
    rand = seeded_random("tamper")
    key = ed25519_from(rand)
    sess = SiteSession(RUN, 3, "a", key, rand)
    body = json.loads(wire.dump_advertisement(sess.advertisement))
    body["round"] = 4
    ad = wire.load_advertisement(json.dumps(body).encode())
    from components.secagg.keys import verify_advertisement

    with pytest.raises(SignatureError):
        verify_advertisement(ad, RUN, 4, "a", key.public_key())
    with pytest.raises(SecAggError, match="not a fedpipe.dev/secagg/roster/v1"):
        wire.load_roster(wire.dump_advertisement(sess.advertisement))
    with pytest.raises(SecAggError, match="is for site a run run-w round 3"):
        SiteSession.restore(sess.state(), RUN, 4, "a")
    with pytest.raises(SecAggError, match="expected 10 words"):
        wire.load_masked(b"\0" * 12, 10, 32)
