"""SecAgg+ core end to end in memory (seeded): exact sums, dropouts, refusals."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from components.secagg.errors import RefusedRequest, SecAggError, SignatureError
from components.secagg.graph import make_roster
from components.secagg.keys import ed25519_from
from components.secagg.quantize import Quantizer
from components.secagg.rand import seeded_random
from components.secagg.site import SiteSession
from components.secagg.unmask import make_request
from tests.support.secagg import RUN, run_round, setup, updates


@pytest.mark.parametrize(("n", "k", "t", "bits"), [(3, 2, 2, 32), (10, 4, 3, 32), (10, 9, 6, 64)])
def test_unmasked_sum_equals_plain_sum_of_quantized_updates(n, k, t, bits) -> None:
    fed = setup(n, k, t)
    quantizer = Quantizer.for_sum(n, clip=0.2, modulus_bits=bits)
    vectors = updates(n, 1000)
    total, expected, masked, quantized = run_round(fed, vectors, quantizer)
    assert total.dtype == quantizer.dtype
    assert np.array_equal(total, expected)
    # the exact integer sum: no wrap-around happened
    exact = sum(q.astype(object) for q in quantized.values())
    assert [int(v) for v in total[:50]] == list(exact[:50])
    # and it dequantizes to the float sum within the rounding error n / (2 scale)
    floats = quantizer.dequantize_sum(total, n)
    assert np.max(np.abs(floats - np.sum(vectors, axis=0))) <= n / (2 * quantizer.scale) + 1e-12
    # no masked vector equals its quantized update
    assert all(not np.array_equal(masked[s], quantized[s]) for s in masked)


@pytest.mark.parametrize("dropped", [("site-03",), ("site-03", "site-07")])
def test_dropouts_after_masking_are_recovered_when_t_holds(dropped) -> None:
    fed = setup(10, 4, 3)
    quantizer = Quantizer.for_sum(10, clip=0.2)
    total, expected, masked, _ = run_round(fed, updates(10, 500), quantizer, drop=dropped)
    assert sorted(set(fed.sessions) - set(masked)) == list(dropped)
    assert np.array_equal(total, expected)


def test_example_federation_of_three_recovers_one_dropout() -> None:
    fed = setup(3, 2, 2)
    quantizer = Quantizer.for_sum(3, clip=0.2)
    total, expected, _, _ = run_round(fed, updates(3, 200), quantizer, drop=("site-01",))
    assert np.array_equal(total, expected)


def test_round_fails_clearly_when_t_does_not_hold() -> None:
    # k = 4: a site's secrets have 5 holders, t = 3. Dropping three of one site's four
    # neighbours leaves it and one neighbour: 2 < 3 shares of its self mask.
    fed = setup(10, 4, 3)
    victim = "site-00"
    near = fed.roster.neighbours[victim]
    quantizer = Quantizer.for_sum(10, clip=0.2)
    with pytest.raises(SecAggError, match=rf"site {victim}'s self mask needs t = 3 shares, only 2"):
        run_round(fed, updates(10, 100), quantizer, drop=tuple(near[:3]))
    # 3 sites of 3 with 2 dropouts: fewer survivors than t, the sites refuse to answer
    small = setup(3, 2, 2)
    with pytest.raises(RefusedRequest, match="1 survivors < threshold 2"):
        run_round(small, updates(3, 10), Quantizer.for_sum(3, 0.2), drop=("site-00", "site-01"))


def test_bad_key_signature_is_refused() -> None:
    rand = seeded_random("sig")
    key, other = ed25519_from(rand), ed25519_from(rand)
    coordinator = ed25519_from(rand)
    a = SiteSession(RUN, 1, "a", key, seeded_random("a"))
    b = SiteSession(RUN, 1, "b", other, seeded_random("b"))
    ads = {"a": a.advertisement, "b": b.advertisement}
    keys = {"a": key.public_key(), "b": other.public_key()}
    # a coordinator substituting its own key for b's: b's signature no longer verifies
    forged = replace(b.advertisement, s_public=bytes(reversed(b.advertisement.s_public)))
    with pytest.raises(SignatureError, match="key advertisement of site b.*does not verify"):
        make_roster(RUN, 1, {**ads, "b": forged}, keys, 1, 2, coordinator, rand)
    # signed by the wrong site key
    with pytest.raises(SignatureError):
        make_roster(
            RUN, 1, ads, {"a": key.public_key(), "b": key.public_key()}, 1, 2, coordinator, rand
        )
    # a site checks its neighbours' advertisements itself, even under a valid roster
    roster = make_roster(RUN, 1, ads, keys, 1, 2, coordinator, rand)
    with pytest.raises(SecAggError):
        a.accept_roster(roster, coordinator.public_key(), {**ads, "b": forged}, keys)
    # and a roster not signed by the coordinator
    with pytest.raises(SignatureError, match="roster"):
        a.accept_roster(roster, key.public_key(), ads, keys)
    # an advertisement replayed from another round
    old = SiteSession(RUN, 0, "b", other, seeded_random("b0")).advertisement
    with pytest.raises(SecAggError, match="replayed"):
        make_roster(RUN, 1, {**ads, "b": old}, keys, 1, 2, coordinator, rand)


def test_share_replayed_from_another_round_is_refused() -> None:
    rand = seeded_random("replay")
    ka, kb, coordinator = ed25519_from(rand), ed25519_from(rand), ed25519_from(rand)
    keys = {"a": ka.public_key(), "b": kb.public_key()}

    def round_of(r: int, a_rand: str, b_rand: str):
        a = SiteSession(RUN, r, "a", ka, seeded_random(a_rand))
        b = SiteSession(RUN, r, "b", kb, seeded_random(b_rand))
        ads = {"a": a.advertisement, "b": b.advertisement}
        roster = make_roster(RUN, r, ads, keys, 1, 2, coordinator, rand)
        for s in (a, b):
            s.accept_roster(roster, coordinator.public_key(), ads, keys)
        return a, b

    a1, b1 = round_of(1, "a1", "b1")
    (old_share,) = a1.make_shares()
    # even with the same round keys (same randomness) the associated data binds the round
    a2, b2 = round_of(2, "a1", "b1")
    with pytest.raises(SecAggError, match="replayed from another round"):
        b2.receive_shares([old_share])
    # a share for b handed to someone else is refused too
    with pytest.raises(SecAggError, match="not for this site"):
        a2.receive_shares([old_share])


def test_a_request_for_both_shares_of_one_site_is_refused() -> None:
    fed = setup(5, 4, 3)
    pub = fed.coordinator_key.public_key()
    quantizer = Quantizer.for_sum(5, clip=0.2)
    ids = sorted(fed.sessions)
    from components.secagg.keys import sign
    from components.secagg.unmask import UnmaskRequest

    both = UnmaskRequest(RUN, 1, tuple(ids), ("site-02",))
    both = replace(both, signature=sign(both.body(), fed.coordinator_key))
    with pytest.raises(
        RefusedRequest, match="both the self-mask and the masking-key shares of site"
    ):
        fed.sessions["site-00"].respond(both, pub)
    # two requests telling different stories: the second is refused for the contested site
    first = make_request(fed.roster, ids, fed.coordinator_key)  # everyone survived
    fed.sessions["site-00"].respond(first, pub)
    second = make_request(fed.roster, [s for s in ids if s != "site-02"], fed.coordinator_key)
    with pytest.raises(RefusedRequest, match="already gave the other share of site.*site-02"):
        fed.sessions["site-00"].respond(second, pub)
    # an unsigned / foreign-signed request is refused
    with pytest.raises(SignatureError):
        fed.sessions["site-01"].respond(replace(first, signature=b"\0" * 64), pub)
    # a live site listed as dropped refuses
    lying = make_request(fed.roster, [s for s in ids if s != "site-03"], fed.coordinator_key)
    with pytest.raises(RefusedRequest, match="lists this live site as dropped"):
        fed.sessions["site-03"].respond(lying, pub)
    del quantizer


def test_a_wrong_share_from_a_holder_fails_the_round_instead_of_corrupting_the_sum() -> None:
    from components.secagg.shamir import Share
    from components.secagg.unmask import make_request, unmask_sum

    fed = setup(5, 4, 3)
    quantizer = Quantizer.for_sum(5, clip=0.2)
    ids = sorted(fed.sessions)
    masked = {s: fed.sessions[s].mask(quantizer.quantize(np.zeros(20)), 32) for s in ids}
    request = make_request(fed.roster, ids, fed.coordinator_key)
    pub = fed.coordinator_key.public_key()
    responses = [fed.sessions[s].respond(request, pub) for s in ids]
    bad = responses[0].self_mask["site-02"]
    responses[0].self_mask["site-02"] = Share(bad.x, bad.y + 1)
    with pytest.raises(SecAggError, match="site site-02's self-mask seed do not match its signed"):
        unmask_sum(fed.roster, fed.ads, masked, responses, 32)


def test_remove_masks_on_a_streamed_sum_leaves_the_callers_array_alone() -> None:
    from components.secagg.unmask import make_request, remove_masks

    fed = setup(4, 3, 3)
    quantizer = Quantizer.for_sum(4, clip=0.2)
    ids = sorted(fed.sessions)
    plain = [quantizer.quantize(v) for v in updates(4, 64)]
    total = np.zeros(64, dtype=np.uint32)
    for s, q in zip(ids, plain, strict=True):
        total += fed.sessions[s].mask(q, 32)  # summed as the vectors arrive
    before = total.copy()
    request = make_request(fed.roster, ids, fed.coordinator_key)
    responses = [fed.sessions[s].respond(request, fed.coordinator_key.public_key()) for s in ids]
    result = remove_masks(total, ids, fed.roster, fed.ads, responses, 32)
    assert np.array_equal(result, sum(plain)) and np.array_equal(total, before)
