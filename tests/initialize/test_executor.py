"""initialize: seeded init through the model registry, or resume from the GCS latest pointer."""

from __future__ import annotations

import json

import numpy as np
import pytest

from components.aggregation.publish import publish_version
from components.aggregation.quorum import RunQuorumError
from components.common.config_digest import config_digest
from components.common.global_model import read_global_model
from components.common.tensors import dump_tensors
from components.domain.canonical import canonical_json
from components.domain.run_id import RunIdError
from components.initialize.executor import InitializeError, run
from tests.support.federation import make_coordinator, unique
from tests.support.site_inputs import contract_json

pytestmark = pytest.mark.integration


@pytest.fixture()
def coordinator(gcs):
    bucket = gcs.create_bucket(unique("coord"))
    return make_coordinator(bucket.name), bucket


def init(coordinator_site, folder, *, run_id="run-1", seed=3, resume=False, dataset="digits"):
    return run(
        coordinator_json=canonical_json(coordinator_site),
        contract_json=contract_json(dataset),
        config_digest=config_digest(
            coordinator_json=canonical_json(coordinator_site), contract_json=contract_json(dataset)
        ),
        run_id=run_id,
        kfp_job_id="job-xyz",
        model_name="logreg",
        dataset=dataset,
        seed=seed,
        resume=resume,
        global_model=str(folder),
    )


def test_seeded_init_is_deterministic_and_shaped_by_the_dataset(coordinator, tmp_path):
    site, _ = coordinator
    meta = init(site, tmp_path / "a")
    init(site, tmp_path / "b")
    init(site, tmp_path / "c", seed=4)
    a, b, c = (read_global_model(tmp_path / x) for x in "abc")
    assert meta == a.meta
    assert (a.version, a.meta["parent"], a.meta["model_name"], a.meta["dataset"]) == (
        0,
        None,
        "logreg",
        "digits",
    )
    assert a.optimizer_state is None
    assert {k: v.shape for k, v in a.tensors.items()} == {
        "dense/kernel": (64, 10),  # digits: 64 pixels, 10 classes
        "dense/bias": (10,),
    }
    assert dump_tensors(a.tensors) == dump_tensors(b.tensors)
    assert not np.array_equal(a.tensors["dense/kernel"], c.tensors["dense/kernel"])


def test_empty_run_id_falls_back_to_the_job_id(coordinator, tmp_path):
    site, _ = coordinator
    assert init(site, tmp_path / "m", run_id="")["run_id"] == "job-xyz"


def test_resume_loads_latest_with_optimizer_state(coordinator, tmp_path):
    site, bucket = coordinator
    tensors = {"dense/kernel": np.full((64, 10), 0.25, np.float32)}
    tensors["dense/bias"] = np.arange(10, dtype=np.float32)
    state = {"m/dense/bias": np.ones(10, np.float32)}
    for version in (1, 2):
        publish_version(
            bucket,
            run_id="run-r",
            version=version,
            parent_version=version - 1,
            model_bytes=dump_tensors({k: v * version for k, v in tensors.items()}),
            optimizer_bytes=dump_tensors(state),
            meta={
                "version": version,
                "model_name": "logreg",
                "dataset": "digits",
                "parent": f"v{version - 1}",
            },
        )
    meta = init(site, tmp_path / "m", run_id="run-r", resume=True)
    model = read_global_model(tmp_path / "m")
    assert (model.version, meta["parent"]) == (2, "v1")
    assert meta["source"] == f"resumed from gs://{bucket.name}/models/run-r/v2"
    np.testing.assert_array_equal(model.tensors["dense/bias"], np.arange(10) * 2)
    np.testing.assert_array_equal(model.optimizer_state["m/dense/bias"], np.ones(10))

    with pytest.raises(InitializeError, match="'digits' model, this run asks for 'breast_cancer'"):
        init(site, tmp_path / "x", run_id="run-r", resume=True, dataset="breast_cancer")
    # without resume: the seeded init again (the run's aggregates then replay/confirm)
    replay = init(site, tmp_path / "y", run_id="run-r", resume=False)
    assert (replay["version"], replay["replay_of_published"]) == (0, 2)


def test_resume_without_anything_published_is_a_seeded_init(coordinator, tmp_path):
    site, _ = coordinator
    meta = init(site, tmp_path / "m", run_id="run-new", resume=True)
    assert meta["version"] == 0
    assert meta["source"].startswith("seeded init (resume: no logreg/digits model published")


def publish_run(bucket, run_id: str, versions: int, dataset: str, first: int = 1) -> None:
    for version in range(first, first + versions):
        tensors = {
            "dense/kernel": np.full((64, 10), version, np.float32),
            "dense/bias": np.full(10, version, np.float32),
        }
        publish_version(
            bucket,
            run_id=run_id,
            version=version,
            parent_version=version - 1,
            model_bytes=dump_tensors(tensors),
            optimizer_bytes=None,
            meta={"version": version, "model_name": "logreg", "dataset": dataset},
        )


def test_resume_continues_the_newest_run_of_the_same_model(coordinator, tmp_path):
    """A recurring pipeline: every run has a new id (the KFP job id) and goes on from the last."""
    site, bucket = coordinator
    publish_run(bucket, "job-old", 2, "digits")
    publish_run(bucket, "job-other-data", 5, "breast_cancer")  # newer, but another dataset
    meta = init(site, tmp_path / "m", run_id="", resume=True)  # run id = kfp job id
    assert meta["version"] == 2
    assert meta["published"] == f"gs://{bucket.name}/models/job-old/v2"
    model = read_global_model(tmp_path / "m")
    np.testing.assert_array_equal(model.tensors["dense/bias"], np.full(10, 2))
    # the new run publishes version 3 under its own id, its first pointer
    publish_run(bucket, "job-xyz", 1, "digits", first=3)
    assert init(site, tmp_path / "n", run_id="job-next", resume=True)["version"] == 3


@pytest.mark.parametrize("bad", ["../other-run", "a/b", ".."])
def test_a_run_id_unsafe_as_an_object_key_is_refused_before_anything_is_written(
    coordinator, tmp_path, bad
):
    site, bucket = coordinator
    with pytest.raises(RunIdError, match="initialize: run id .* not usable in object keys"):
        init(site, tmp_path / "m", run_id=bad)
    assert not (tmp_path / "m").exists()
    assert list(bucket.list_blobs()) == []


def _summary(folder, passed: bool, reason: str | None = None) -> str:
    folder.mkdir(parents=True)
    (folder / "summary.json").write_text(json.dumps({"passed": passed, "reason": reason}))
    return str(folder)


def test_initialize_stops_the_run_when_the_quorum_cannot_hold(coordinator, tmp_path):
    site, _ = coordinator
    validations = {
        "a": _summary(tmp_path / "va", True),
        "b": _summary(tmp_path / "vb", False, "site b abstains: privacy budget: exhausted"),
        "c": str(tmp_path / "missing"),
    }
    kwargs = dict(
        coordinator_json=canonical_json(site),
        contract_json=contract_json("digits"),
        config_digest=config_digest(
            coordinator_json=canonical_json(site), contract_json=contract_json("digits")
        ),
        run_id="run-q",
        kfp_job_id="job-q",
        model_name="logreg",
        dataset="digits",
        seed=0,
        resume=False,
        validations=validations,
    )
    with pytest.raises(RunQuorumError, match=r"b \(site b abstains: privacy budget: exhausted\)"):
        run(**kwargs, global_model=str(tmp_path / "gm"), min_sites=2)
    assert not (tmp_path / "gm").exists()  # no model: no train can start
    meta = run(**kwargs, global_model=str(tmp_path / "gm1"), min_sites=1)
    assert meta["version"] == 0


def test_the_quorum_decision_and_the_starting_model_are_signed_into_the_coordinators_chain(
    coordinator, tmp_path, monkeypatch
):
    """A coordinator with a signing key: a refused quorum is on record before the error,
    then an accepted run with the sites taking part and v0's sha256; the chain verifies."""
    from components.audit.store import GcsStore, read_chain
    from components.audit.verify import run_story, verify_chain
    from components.common.manifest import generate_keypair
    from components.domain.canonical import sha256_hex

    site, bucket = coordinator
    private, public = generate_keypair()
    site = site.copy(update={"signing": {"public_key": public}})
    site = type(site).parse_raw(canonical_json(site))
    monkeypatch.setenv("FEDPIPE_SIGNING_KEY__COORDINATOR", private)
    why = "site b abstains: privacy budget: exhausted"
    validations = {"a": _summary(tmp_path / "va", True), "b": _summary(tmp_path / "vb", False, why)}
    kwargs = dict(
        coordinator_json=canonical_json(site),
        contract_json=contract_json("digits"),
        config_digest=config_digest(
            coordinator_json=canonical_json(site), contract_json=contract_json("digits")
        ),
        run_id="run-audit",
        kfp_job_id="job-a",
        model_name="logreg",
        dataset="digits",
        seed=0,
        resume=False,
        validations=validations,
    )
    with pytest.raises(RunQuorumError):
        run(**kwargs, global_model=str(tmp_path / "gm0"), min_sites=2)
    run(**kwargs, global_model=str(tmp_path / "gm"), min_sites=1)
    model = read_global_model(tmp_path / "gm")
    chain = read_chain(GcsStore(bucket), "run-audit", "coordinator", public)
    assert verify_chain(chain) == [] and run_story(chain) == []
    refused, accepted = chain.records
    assert (refused.kind, refused.body["decision"]) == ("initialize", "refuse")
    assert refused.body["model_sha256"] is None and "quorum cannot hold" in refused.body["reason"]
    assert accepted.body["decision"] == "accept"
    assert accepted.body["taking_part"] == ["a"] and accepted.body["abstained"] == {"b": why}
    assert accepted.body["version"] == 0 and accepted.body["min_sites"] == 1
    assert accepted.body["model_sha256"] == sha256_hex(dump_tensors(model.tensors))


def test_resume_of_an_he_run_continues_from_the_published_ciphertext(coordinator, tmp_path):
    """Protection he: the published version is one ciphertext; resume writes it as the
    starting (encrypted) global model, a site decrypts it, and the next round adds to it."""
    from components.common.global_model import GlobalModel
    from components.he.ckks import encrypt_weighted
    from components.he.global_model import (
        decrypt_global,
        encrypted_from,
        flatten,
        next_model,
        read_any,
    )
    from components.he.keys import new_federation_keys, open_envelope

    site_spec, bucket = coordinator
    keys = new_federation_keys()
    site = open_envelope(keys.site, secret=True, where="site")
    public = open_envelope(keys.coordinator, secret=False, where="coordinator")
    rng = np.random.default_rng(5)
    plain = {
        "dense/kernel": rng.normal(size=(64, 10)).astype(np.float32),
        "dense/bias": rng.normal(size=(10,)).astype(np.float32),
    }
    base = {"model_name": "logreg", "dataset": "digits"}
    previous: object = GlobalModel(dict(plain), {**base, "version": 0, "parent": None})

    def step(previous, version):
        delta = {n: rng.normal(size=t.shape).astype(np.float32) for n, t in plain.items()}
        ct = encrypt_weighted(site.context, flatten(delta), 1.0)
        bundle = next_model(previous, public.context, public.context_id, [ct], 1.0)
        meta = {**base, "version": version, "parent": f"v{version - 1}"}
        enc = encrypted_from(
            previous, context_id=public.context_id, version=version, bundle=bundle, meta=meta
        )
        return enc, delta

    for version in (1, 2):
        previous, delta = step(previous, version)
        plain = {n: plain[n] + delta[n] for n in plain}
        publish_version(
            bucket,
            run_id="run-he",
            version=version,
            parent_version=version - 1,
            model_bytes=previous.bundle,
            optimizer_bytes=None,
            meta=previous.meta,
            model_file="model.ckks",
        )
    meta = init(site_spec, tmp_path / "m", run_id="run-he", resume=True)
    assert meta["source"] == f"resumed from gs://{bucket.name}/models/run-he/v2"
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == ["meta.json", "model.ckks"]
    resumed = read_any(tmp_path / "m")
    assert resumed.version == 2 and resumed.meta["he"]["context_id"] == keys.context_id
    got = decrypt_global(resumed, site.context, site.context_id)
    for n in plain:
        assert np.linalg.norm(got.tensors[n] - plain[n]) / np.linalg.norm(plain[n]) < 1e-6
    # the resumed run's first aggregate adds to it; the weight slot still counts one per round
    following, delta = step(resumed, 3)
    got = decrypt_global(following, site.context, site.context_id)
    for n in plain:
        want = plain[n] + delta[n]
        assert np.linalg.norm(got.tensors[n] - want) / np.linalg.norm(want) < 1e-6


def test_initialize_references_the_site_records_behind_each_validation_summary(
    coordinator, tmp_path, monkeypatch
):
    """Each validation summary names the site's admission and validation records by hash
    (validate writes them beside the records it signs); the initialize record carries them
    as refs (site order, admission then validation) and in `site_records`, for a refusal
    too; a value that is not a sha256 is not referenced."""
    from components.audit.store import GcsStore, read_chain
    from components.common.manifest import generate_keypair

    site, bucket = coordinator
    private, public = generate_keypair()
    site = site.copy(update={"signing": {"public_key": public}})
    site = type(site).parse_raw(canonical_json(site))
    monkeypatch.setenv("FEDPIPE_SIGNING_KEY__COORDINATOR", private)
    h = {name: name * 64 for name in "abcd"}

    def summary(folder, passed, audit):
        folder.mkdir(parents=True)
        body = {"passed": passed, "reason": None if passed else "site b abstains: budget"}
        (folder / "summary.json").write_text(json.dumps({**body, "audit": audit}))
        return str(folder)

    validations = {
        "b": summary(tmp_path / "vb", False, {"admission": h["c"], "validation": h["d"]}),
        "a": summary(tmp_path / "va", True, {"admission": h["a"], "validation": "not-a-hash"}),
    }
    kwargs = dict(
        coordinator_json=canonical_json(site),
        contract_json=contract_json("digits"),
        config_digest=config_digest(
            coordinator_json=canonical_json(site), contract_json=contract_json("digits")
        ),
        run_id="run-refs",
        kfp_job_id="job-r",
        model_name="logreg",
        dataset="digits",
        seed=0,
        resume=False,
        validations=validations,
    )
    with pytest.raises(RunQuorumError):
        run(**kwargs, global_model=str(tmp_path / "gm0"), min_sites=2)
    run(**kwargs, global_model=str(tmp_path / "gm"), min_sites=1)
    refused, accepted = read_chain(GcsStore(bucket), "run-refs", "coordinator", public).records
    for record in (refused, accepted):
        assert record.refs == [h["a"], h["c"], h["d"]]
        assert record.body["site_records"] == {
            "a": {"admission": h["a"]},
            "b": {"admission": h["c"], "validation": h["d"]},
        }
