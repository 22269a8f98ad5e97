"""SecAgg+ through the stage executors (site tasks, coordinator tasks, aggregate's unmasking)
against the real test object stores: the unmasked sum equals the plain sum of the quantized
updates exactly (the example federation's sites and policies, and 10 sites); sites dropping
after masking are recovered while t holds and the round fails naming why when it does not;
the site executors refuse a forged advertisement, a replayed share and a request for both
shares of one site."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from components.aggregation.secure import secure_round
from components.common.global_model import read_global_model
from components.export.masked import run_masked
from components.export.update import model_delta
from components.secagg import exchange, wire
from components.secagg.encode import decode_mean
from components.secagg.errors import RefusedRequest, SecAggError, SignatureError
from components.secagg.keys import ed25519_from, sign
from components.secagg.rand import seeded_random
from components.secagg.settings import unflatten
from components.secagg.unmask import UnmaskRequest
from components.secagg_stages import executor as site_steps
from pipelines.config.loader import load_federation
from tests.support.federation import global_tensors
from tests.support.paths import REPO
from tests.support.secagg_stages import deltas, make_federation, secagg_policy

pytestmark = pytest.mark.integration


def _example_policies() -> dict:
    """The example federation's sites with their policies from policies/, asking secagg."""
    federation = load_federation(REPO / "sites", REPO / "policies")
    return {s: secagg_policy(federation.policy_of(s)) for s in federation.sites}


def _ten_sites() -> dict:
    policy = secagg_policy()
    return {f"site-{i:02d}": policy for i in range(10)}


@pytest.fixture()
def fed_factory(minio, gcs, s3_server, tmp_path, monkeypatch):
    def make(site_policies, rounds=1):
        return make_federation(
            minio, gcs, s3_server.endpoint, tmp_path, monkeypatch, site_policies, rounds=rounds
        )

    return make


def _masked_round(fed, r=1, trained=None):
    """Train (as local model folders) and mask; returns (round, global folder, deltas)."""
    ids = sorted(fed.sites)
    base = global_tensors()
    updates = deltas(ids, seed=r)
    global_folder = fed.global_model(r, base)
    local = {
        s: fed.local_model(
            s, r, None if trained and s not in trained else
            {k: base[k] + updates[s][k] for k in base},
        )
        for s in ids
    }  # fmt: skip
    out = fed.mask(r, global_folder, local)
    exact = {
        s: model_delta(
            {k: base[k] + updates[s][k] for k in base}, read_global_model(global_folder).tensors, s
        )
        for s in ids
    }
    return out, global_folder, exact


def _plain_mean(fed, exact, summed_sites):
    total = sum(fed.plain_quantized(exact[s]) for s in summed_sites)
    mean, _ = decode_mean(total, len(summed_sites), fed.settings.quantizer())
    return unflatten(mean, global_tensors())


@pytest.mark.parametrize("federation", ["example", "ten"])
def test_the_unmasked_sum_is_the_plain_sum_of_the_quantized_updates(fed_factory, federation):
    fed = fed_factory(_example_policies() if federation == "example" else _ten_sites())
    fed.setup()
    out, global_folder, exact = _masked_round(fed)
    request = fed.request(1, global_folder, out)
    assert request["survivors"] == sorted(fed.sites) and request["dropped"] == {}
    for sid in fed.sites:
        fed.answer(sid, 1, out)
    result = secure_round(
        fed.round_config(1), read_global_model(global_folder), out.updates, out.answers,
        fed.settings, fed.gcs_bucket, fed.readers(),
    )  # fmt: skip
    expected = _plain_mean(fed, exact, sorted(fed.sites))
    assert sorted(result.delta) == sorted(expected)
    for name in expected:  # the same integer sum: bit-identical after dequantizing
        assert np.array_equal(result.delta[name], expected[name]), name
        plain = np.mean([exact[s][name] for s in fed.sites], axis=0)
        np.testing.assert_allclose(result.delta[name], plain, atol=1e-6)
    assert result.contributors == sorted(fed.sites)
    assert "robust rules" in result.notes["protection"]
    # the masked words alone are not the quantized update
    some = sorted(fed.sites)[0]
    words = wire.load_masked(
        fed.minio.get_object(
            fed.sites[some].object_store.bucket,
            exchange.site_key(fed.run_id, 1, some, "masked.bin"),
        ).read(),
        len(fed.plain_quantized(exact[some])),
        64,
    )
    assert not np.array_equal(words, fed.plain_quantized(exact[some]))
    # the private round state is only under secagg-private/, never in the coordinator's bucket
    names = [b.name for b in fed.gcs_bucket.list_blobs()]
    assert names and not any("state" in n or "private" in n for n in names)


@pytest.mark.parametrize(
    ("federation", "silent"),
    [("example", 1), ("ten", 1), ("ten", 2)],
)
def test_sites_dropping_after_masking_are_recovered_while_t_holds(fed_factory, federation, silent):
    fed = fed_factory(_example_policies() if federation == "example" else _ten_sites())
    fed.setup()
    out, global_folder, exact = _masked_round(fed)
    fed.request(1, global_folder, out)
    ids = sorted(fed.sites)
    for sid in ids[silent:]:  # the first `silent` sites masked, then never answered
        fed.answer(sid, 1, out)
    result = secure_round(
        fed.round_config(1), read_global_model(global_folder), out.updates, out.answers,
        fed.settings, fed.gcs_bucket, fed.readers(),
    )  # fmt: skip
    expected = _plain_mean(fed, exact, ids)  # their updates are in the sum all the same
    for name in expected:
        assert np.array_equal(result.delta[name], expected[name])


def test_two_sites_dropping_after_masking_fail_a_three_site_round_clearly(fed_factory):
    fed = fed_factory(_example_policies())  # complete graph, t = 2 of 3 holders
    fed.setup()
    out, global_folder, _ = _masked_round(fed)
    fed.request(1, global_folder, out)
    fed.answer("hospital-paris", 1, out)  # berlin and boston masked, then went silent
    with pytest.raises(SecAggError, match=r"needs t = 2 shares, only 1 .* the round fails"):
        secure_round(
            fed.round_config(1), read_global_model(global_folder), out.updates, out.answers,
            fed.settings, fed.gcs_bucket, fed.readers(),
        )  # fmt: skip


@pytest.mark.parametrize("dropped", [1, 2])
def test_sites_dropping_before_masking_are_recovered_from_their_key_shares(fed_factory, dropped):
    fed = fed_factory(_ten_sites())  # k = 8, t = 5
    fed.setup()
    ids = sorted(fed.sites)
    out, global_folder, exact = _masked_round(fed, trained=set(ids[dropped:]))
    request = fed.request(1, global_folder, out)
    assert sorted(request["dropped"]) == ids[:dropped]
    for sid in ids:
        answer = fed.answer(sid, 1, out)
        if sid in ids[:dropped]:
            assert answer["status"] == "abstained"
        else:
            assert answer["mask_key_of"] == ids[:dropped] or set(ids[:dropped]) >= set(
                answer["mask_key_of"]
            )
    result = secure_round(
        fed.round_config(1), read_global_model(global_folder), out.updates, out.answers,
        fed.settings, fed.gcs_bucket, fed.readers(),
    )  # fmt: skip
    expected = _plain_mean(fed, exact, ids[dropped:])
    for name in expected:
        assert np.array_equal(result.delta[name], expected[name])
    assert result.contributors == ids[dropped:]
    assert sorted(result.abstained) == ids[:dropped]


def test_a_round_with_too_few_maskers_fails_before_any_share_is_asked(fed_factory):
    fed = fed_factory(_example_policies())
    fed.setup()
    out, global_folder, _ = _masked_round(fed, trained={"hospital-paris"})
    with pytest.raises(SecAggError, match=r"only 1 site\(s\) masked .* no share is requested"):
        fed.request(1, global_folder, out)
    prefix = exchange.round_prefix(fed.run_id, 1)
    assert not fed.gcs_bucket.blob(prefix + "request.json").exists()


def test_a_site_refuses_an_advertisement_with_a_bad_signature(fed_factory):
    fed = fed_factory(_example_policies())
    sid = "hospital-berlin"
    fed.setup_keys_and_roster()
    # the coordinator hands berlin a neighbour's advertisement with swapped keys
    path = Path(fed.roster) / exchange.round_prefix(fed.run_id, 1) / "advertisements.json"
    ads = json.loads(path.read_text())
    peer = ads["hospital-paris"]
    peer["c_public"], peer["s_public"] = peer["s_public"], peer["c_public"]
    path.write_text(json.dumps(ads))
    with pytest.raises(SignatureError, match="hospital-paris.*signature does not verify"):
        site_steps.run_shares(
            fed.task(sid), coordinator_json=fed.coordinator_json, sites_json=fed.sites_json,
            validation=fed.validations[sid], roster=fed.roster, shares=fed.folder("shares", sid),
            client_factory=fed.factory(),
        )  # fmt: skip


def test_a_site_refuses_a_share_replayed_from_another_round(fed_factory):
    fed = fed_factory(_example_policies(), rounds=2)
    fed.setup()
    # the relay hands berlin paris's round-1 share as its round-2 share
    root = Path(fed.relay)
    inbox = "inbox/hospital-berlin/hospital-paris.json"
    one = root / exchange.round_prefix(fed.run_id, 1) / inbox
    two = root / exchange.round_prefix(fed.run_id, 2) / inbox
    assert json.loads(one.read_text())["round"] == 1
    shutil.copyfile(one, two)
    base = global_tensors()
    global_folder = fed.global_model(2, base)
    local = fed.local_model("hospital-berlin", 2, {k: v + 0.01 for k, v in base.items()})
    with pytest.raises(SecAggError, match="replayed from another round.*refused"):
        run_masked(
            fed.task("hospital-berlin", 2), local_model=local, global_model=global_folder,
            relay=fed.relay, secagg_json=fed.settings.to_json(),
            coordinator_json=fed.coordinator_json, sites_json=fed.sites_json,
            update=fed.folder("u"), client_factory=fed.factory(),
        )  # fmt: skip
    masked = exchange.site_key(fed.run_id, 2, "hospital-berlin", "masked.bin")
    bucket = fed.sites["hospital-berlin"].object_store.bucket
    assert masked not in {o.object_name for o in fed.minio.list_objects(bucket, recursive=True)}


def test_a_site_refuses_a_request_for_both_shares_of_one_site(fed_factory):
    fed = fed_factory(_example_policies())
    fed.setup()
    out, global_folder, _ = _masked_round(fed)
    fed.request(1, global_folder, out)
    # a coordinator (holding its real key) asks for paris's self mask and its masking key
    from cryptography.hazmat.primitives import serialization

    key = serialization.load_pem_private_key(fed.coordinator_pem.encode(), password=None)
    sites = sorted(fed.sites)
    unsigned = UnmaskRequest(fed.run_id, 1, tuple(sites), ("hospital-paris",))
    forged = UnmaskRequest(**{**unsigned.__dict__, "signature": sign(unsigned.body(), key)})
    path = Path(out.request) / exchange.round_prefix(fed.run_id, 1) / "request.json"
    path.write_bytes(wire.dump_request(forged))
    with pytest.raises(RefusedRequest, match="both the self-mask and the masking-key shares"):
        fed.answer("hospital-berlin", 1, out)
    # a request signed by another key is refused too
    other = ed25519_from(seeded_random("not-the-coordinator"))
    honest = UnmaskRequest(fed.run_id, 1, tuple(sites), ())
    path.write_bytes(
        wire.dump_request(
            UnmaskRequest(**{**honest.__dict__, "signature": sign(honest.body(), other)})
        )
    )
    with pytest.raises(SignatureError):
        fed.answer("clinic-boston", 1, out)


def test_a_masked_update_without_the_sites_admission_counts_as_dropped(fed_factory):
    fed = fed_factory(_ten_sites())
    fed.setup()
    out, global_folder, exact = _masked_round(fed)
    ids = sorted(fed.sites)
    # site-00's admission record is gone (it never admitted this run)
    from components.audit.events import admission_key
    from components.domain.canonical import policy_digest

    site = fed.sites[ids[0]]
    key = admission_key(fed.run_id, ids[0], policy_digest(fed.policies[ids[0]]))
    fed.minio.remove_object(site.object_store.bucket, key)
    request = fed.request(1, global_folder, out)
    assert ids[0] in request["dropped"] and "admission" in request["dropped"][ids[0]]
    for sid in ids:
        fed.answer(sid, 1, out)
    result = secure_round(
        fed.round_config(1), read_global_model(global_folder), out.updates, out.answers,
        fed.settings, fed.gcs_bucket, fed.readers(),
    )  # fmt: skip
    expected = _plain_mean(fed, exact, ids[1:])  # its pairwise masks removed, its update not in
    for name in expected:
        assert np.array_equal(result.delta[name], expected[name])
    assert {s: len(result.consumed[s]) for s in ids[1:]} == {s: 2 for s in ids[1:]}


def _setup_with_silent(fed, silent):
    """advertise → roster → shares of every site but `silent` (whose shares task left an
    abstained ref: it shared nothing after the roster) → relay; the relay's ref."""
    from components.secagg_stages import coordinator as coord

    fed.setup_keys_and_roster()
    for sid in sorted(fed.sites):
        fed.shares[sid] = fed.folder("shares", sid)
        if sid in silent:
            Path(fed.shares[sid]).mkdir(parents=True, exist_ok=True)
            Path(fed.shares[sid], "ref.json").write_text(
                json.dumps({"status": "abstained", "reason": f"site {sid}: store unreachable"})
            )
            continue
        site_steps.run_shares(
            fed.task(sid), coordinator_json=fed.coordinator_json, sites_json=fed.sites_json,
            validation=fed.validations[sid], roster=fed.roster, shares=fed.shares[sid],
            client_factory=fed.factory(),
        )  # fmt: skip
    fed.relay = fed.folder("relay")
    return coord.run_relay(**fed.fanin(), rounds=fed.rounds, shares=fed.shares, relay=fed.relay)


@pytest.mark.parametrize(("federation", "silent"), [("example", 1), ("ten", 1), ("ten", 2)])
def test_a_site_that_shares_nothing_is_excluded_at_relay_and_the_others_aggregate(
    fed_factory, federation, silent
):
    fed = fed_factory(_example_policies() if federation == "example" else _ten_sites())
    ids = sorted(fed.sites)
    quiet, rest = ids[:silent], ids[silent:]
    relayed = _setup_with_silent(fed, set(quiet))
    assert sorted(relayed["excluded"]["1"]) == quiet
    assert all("shared nothing" in why for why in relayed["excluded"]["1"].values())
    out, global_folder, exact = _masked_round(fed)
    for sid in quiet:  # it masks nothing: no one holds its shares, no one masked with it
        ref = json.loads(Path(out.updates[sid], "ref.json").read_text())
        assert ref["status"] == "abstained" and "excluded from round 1 at relay" in ref["reason"]
    request = fed.request(1, global_folder, out)
    assert request["survivors"] == rest and request["dropped"] == {}
    assert request["excluded"] == quiet
    for sid in ids:
        answer = fed.answer(sid, 1, out)
        assert answer["status"] == ("abstained" if sid in quiet else "answered")
    result = secure_round(
        fed.round_config(1), read_global_model(global_folder), out.updates, out.answers,
        fed.settings, fed.gcs_bucket, fed.readers(),
    )  # fmt: skip
    expected = _plain_mean(fed, exact, rest)
    for name in expected:  # the same integer sum as the plain one of the others
        assert np.array_equal(result.delta[name], expected[name]), name
    assert result.contributors == rest
    assert result.notes["secagg"]["excluded"] == quiet


def test_relay_fails_clearly_when_the_sites_left_cannot_hold_quorum_and_threshold(fed_factory):
    fed = fed_factory(_example_policies())  # three sites, k = 2, t = 2
    with pytest.raises(SecAggError) as failed:
        _setup_with_silent(fed, {"clinic-boston", "hospital-berlin"})
    message = str(failed.value)
    assert "site(s) clinic-boston, hospital-berlin are in the roster but shared nothing" in message
    assert "1 site(s) left, fewer than max(quorum 2, 2, threshold t = 2)" in message
    assert "site hospital-paris keeps 1 live share holder(s)" in message
    prefix = exchange.round_prefix(fed.run_id, 1)
    assert not fed.gcs_bucket.blob(prefix + exchange.EXCLUSION_FILE).exists()


def test_a_forged_exclusion_is_refused_by_the_sites(fed_factory):
    fed = fed_factory(_example_policies())
    _setup_with_silent(fed, {"clinic-boston"})
    # someone other than the coordinator rewrites the exclusion handed to the sites
    path = Path(fed.relay) / exchange.round_prefix(fed.run_id, 1) / exchange.EXCLUSION_FILE
    body = json.loads(path.read_text())
    body["excluded"]["hospital-berlin"] = "forged"
    path.write_text(json.dumps(body))
    with pytest.raises(SignatureError):
        _masked_round(fed)


def test_a_site_whose_store_fails_while_sharing_abstains_and_is_excluded(fed_factory):
    from urllib3.exceptions import ProtocolError

    from components.secagg_stages import coordinator as coord

    class _FailingPuts:  # the site's store accepts no writes any more
        def __init__(self, inner):
            self._inner = inner

        def _put_object(self, *args, **kwargs):  # what create-only puts call
            raise ProtocolError("connection reset by peer")

        put_object = _put_object

        def __getattr__(self, name):
            return getattr(self._inner, name)

    fed = fed_factory(_ten_sites())
    fed.setup_keys_and_roster()
    ids = sorted(fed.sites)
    for sid in ids:
        fed.shares[sid] = fed.folder("shares", sid)
        factory = (lambda: _FailingPuts(fed.minio)) if sid == ids[0] else fed.factory()
        ref = site_steps.run_shares(
            fed.task(sid), coordinator_json=fed.coordinator_json, sites_json=fed.sites_json,
            validation=fed.validations[sid], roster=fed.roster, shares=fed.shares[sid],
            client_factory=factory,
        )  # fmt: skip
        assert ref["status"] == ("abstained" if sid == ids[0] else "shared")
    assert "object store failed while sealing round 1's shares" in ref_of(fed.shares[ids[0]])
    fed.relay = fed.folder("relay")
    relayed = coord.run_relay(**fed.fanin(), rounds=fed.rounds, shares=fed.shares, relay=fed.relay)
    assert list(relayed["excluded"]["1"]) == [ids[0]]
    assert "ProtocolError" in relayed["excluded"]["1"][ids[0]]


def ref_of(folder):
    return Path(folder, "ref.json").read_text()
