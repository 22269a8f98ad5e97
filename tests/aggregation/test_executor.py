"""The aggregate executor end to end on real servers: S3-compatible buckets for the sites'
updates, the GCS emulator for the global model. Expected models are hand-computed."""

from __future__ import annotations

import dataclasses
import json
import threading
from pathlib import Path

import numpy as np
import pytest

from components.aggregation.executor import AggregationError, run
from components.aggregation.publish import PublishConflictError, load_latest, read_latest
from components.aggregation.quorum import QuorumError
from components.common.config_digest import ConfigDigestError, config_digest
from components.common.global_model import GlobalModel, read_global_model, write_global_model
from components.common.manifest import generate_keypair
from components.common.tensors import load_tensors
from components.domain.canonical import canonical_json
from components.domain.models import Site
from components.domain.run_id import RunIdError
from tests.support.federation import (
    SiteKit,
    abstain,
    constant_update,
    export,
    global_tensors,
    make_coordinator,
    make_policy,
    new_site,
    policies_json,
    sites_json,
    unique,
)

pytestmark = pytest.mark.integration

RUN = "run-exec"


@pytest.fixture()
def env(monkeypatch, s3_server, minio, gcs, tmp_path):
    monkeypatch.setenv("FEDPIPE_S3_ACCESS_KEY", s3_server.access_key)
    monkeypatch.setenv("FEDPIPE_S3_SECRET_KEY", s3_server.secret_key)
    monkeypatch.delenv("FEDPIPE_ENDPOINT_OVERRIDES", raising=False)
    bucket = gcs.create_bucket(unique("coord"))
    return Env(s3_server.endpoint, minio, bucket, tmp_path)


class Env:
    def __init__(self, endpoint: str, minio, bucket, tmp: Path) -> None:
        self.endpoint, self.minio, self.bucket, self.tmp = endpoint, minio, bucket, tmp
        self.coordinator = make_coordinator(bucket.name)
        self.kits: dict[str, SiteKit] = {}

    def site(self, name: str, **kwargs) -> SiteKit:
        self.kits[name] = new_site(name, endpoint=self.endpoint, **kwargs)
        return self.kits[name]

    def fresh(self, stem: str) -> Path:
        """A new, unused folder path under tmp (unique across threads)."""
        return self.tmp / unique(stem)

    def previous(self) -> str:
        folder = self.fresh("v0")
        meta = {"version": 0, "model_name": "mlp", "dataset": "digits", "parent": None}
        write_global_model(folder, GlobalModel(global_tensors(), meta, None))
        return str(folder)

    def export(self, name: str, value: float | dict, round_index: int = 1, **kwargs) -> str:
        tensors = constant_update(value) if isinstance(value, float) else value
        return export(
            self.minio,
            self.kits[name],
            tensors,
            self.fresh(f"update-r{round_index}-{name}"),
            run_id=kwargs.pop("run_id", RUN),
            round_index=kwargs.pop("signed_round", round_index),
            key_round=round_index,
            key_run=RUN,
            **kwargs,
        )

    def aggregate(self, previous: str, updates: dict[str, str], *, round_index: int = 1, **kw):
        out = self.fresh(f"out-r{round_index}")
        args = {
            "coordinator_json": canonical_json(self.coordinator),
            "sites_json": sites_json(list(self.kits.values())),
            "policies_json": policies_json(list(self.kits.values())),
            "run_id": RUN,
            "kfp_job_id": "job-1",
            "round_index": round_index,
            "rule": "fedavg",
            "rule_params_json": "{}",
            "server_optimizer": "fedavg",
            "server_learning_rate": 1.0,
            "optimizer_params_json": "{}",
            "min_sites": 2,
            "previous_model": previous,
            "updates": updates,
            "global_model": str(out / "global_model"),
            "round_report": str(out / "round_report"),
        }
        args.update(kw)
        texts = {k: args[k] for k in ("coordinator_json", "sites_json", "policies_json")}
        args.setdefault("config_digest", config_digest(**texts))  # what the compiler passes
        report = run(**args)
        return report, out


def expected(offset: float) -> dict[str, np.ndarray]:  # global + offset everywhere
    return {k: v + np.float32(offset) for k, v in global_tensors().items()}


def assert_model(tensors, want) -> None:
    assert sorted(tensors) == sorted(want)
    for name in want:
        np.testing.assert_allclose(tensors[name], want[name], rtol=0, atol=1e-6)


def test_bad_updates_are_refused_and_named_while_the_round_completes(env):
    for name in ("good-a", "good-b", "good-c", "forged", "replay-round", "replay-run", "nan"):
        env.site(name)
    env.site("shape")
    env.site("oversize")
    env.site("abstains")
    nan = constant_update(0.5)
    nan["output/kernel"][1, 1] = np.nan
    shape = constant_update(0.5)
    shape["hidden/bias"] = np.zeros(4, np.float32)
    big = constant_update(0.5)
    big["hidden/kernel"] = np.ones((300, 300), np.float32)
    updates = {
        "good-a": env.export("good-a", 0.5, epsilon=1.5),
        "good-b": env.export("good-b", -0.25, epsilon=2.0),
        "good-c": env.export("good-c", 0.5, epsilon=2.5),
        "forged": env.export("forged", 9.0, signing_pem=generate_keypair()[0]),
        "replay-round": env.export("replay-round", 9.0, signed_round=0),
        "replay-run": env.export("replay-run", 9.0, run_id="run-before"),
        "nan": env.export("nan", nan),
        "shape": env.export("shape", shape),
        "oversize": env.export("oversize", big),
        "abstains": abstain(env.kits["abstains"], env.tmp / "abst", "budget exhausted"),
    }
    report, out = env.aggregate(env.previous(), updates, rule="median")

    # median of 0.5, -0.25, 0.5 per coordinate = 0.5; fedavg step with η=1
    model = read_global_model(out / "global_model")
    assert_model(model.tensors, expected(0.5))
    assert report["contributors"] == ["good-a", "good-b", "good-c"]
    assert report["abstained"] == {"abstains": "budget exhausted"}
    rejected = report["rejected"]
    assert sorted(rejected) == ["forged", "nan", "oversize", "replay-round", "replay-run", "shape"]
    assert "signature does not verify" in rejected["forged"]
    assert "replay" in rejected["replay-round"] and "round 0" in rejected["replay-round"]
    assert "replay" in rejected["replay-run"] and "run-before" in rejected["replay-run"]
    assert "non-finite" in rejected["nan"]
    assert "'hidden/bias' has shape (4,), global model has (3,)" in rejected["shape"]
    assert rejected["oversize"].startswith("oversize:")
    assert report["epsilon"]["good-b"]["epsilon"] == 2.0
    assert sorted(report["epsilon"]) == report["contributors"]
    assert (report["round"], report["version"], report["rule"]) == (1, 1, "median")
    assert report["quorum"] == {"required": 2, "valid": 3}

    # outputs per contract
    on_disk = json.loads((out / "round_report" / "round.json").read_text())
    assert on_disk == report
    assert model.meta["version"] == 1 and model.meta["parent"] == "v0"
    assert (model.meta["model_name"], model.meta["dataset"]) == ("mlp", "digits")
    assert model.optimizer_state is None  # plain fedavg keeps no state

    # published: the same model, metadata with contributors, rejections and rule
    latest = load_latest(env.bucket, RUN)
    assert latest.pointer.version == 1
    assert_model(load_tensors(latest.model_bytes), expected(0.5))
    assert latest.meta["contributors"] == ["good-a", "good-b", "good-c"]
    assert latest.meta["rejected"] == rejected
    assert latest.meta["rule"] == "median" and latest.meta["parent_version"] == 0
    assert report["published"] == f"gs://{env.bucket.name}/models/{RUN}/v1"


def test_quorum_failure_publishes_nothing_and_leaves_latest(env):
    for name in ("a", "b", "c"):
        env.site(name)
    first, out1 = env.aggregate(
        env.previous(), {"a": env.export("a", 0.1), "b": env.export("b", 0.3)}
    )
    assert first["version"] == 1
    before = read_latest(env.bucket, RUN)

    updates = {
        "a": env.export("a", 0.1, round_index=2),
        "b": env.export("b", 0.1, round_index=2, signing_pem=generate_keypair()[0]),
        "c": abstain(env.kits["c"], env.tmp / "c2", "validation failed"),
    }
    with pytest.raises(QuorumError) as info:
        env.aggregate(str(out1 / "global_model"), updates, round_index=2)
    message = str(info.value)
    assert "round 2: quorum not met: 1 valid update(s) [a], need 2" in message
    assert "b (" in message and "signature does not verify" in message
    assert "c (validation failed)" in message
    after = read_latest(env.bucket, RUN)
    assert (after.version, after.generation) == (before.version, before.generation)
    assert not [b.name for b in env.bucket.list_blobs(prefix=f"models/{RUN}/v2/")]
    assert not [p.name for p in env.tmp.iterdir() if p.name.startswith("out-r2")]


def test_policy_min_sites_raises_the_quorum(env):
    strict = make_policy("strict-health", min_sites=3)
    env.site("a")
    env.site("b", policy=strict)
    updates = {"a": env.export("a", 0.1), "b": env.export("b", 0.1)}
    with pytest.raises(QuorumError, match=r"need 3 \(policy of b: aggregation.min_sites=3\)"):
        env.aggregate(env.previous(), updates, min_sites=1)
    assert read_latest(env.bucket, RUN) is None


def test_server_momentum_state_is_carried_between_rounds(env):
    env.site("a")
    env.site("b")
    opt = {"server_optimizer": "fedavgm", "optimizer_params_json": '{"momentum": 0.9}'}
    r1, out1 = env.aggregate(
        env.previous(), {"a": env.export("a", 0.1), "b": env.export("b", 0.3)}, **opt
    )
    m1 = read_global_model(out1 / "global_model")
    # v1 = 0.2, x1 = x0 + 0.2
    assert_model(m1.tensors, expected(0.2))
    np.testing.assert_allclose(m1.optimizer_state["momentum/output/bias"], [0.2, 0.2], atol=1e-7)
    assert load_latest(env.bucket, RUN).optimizer_bytes is not None

    updates2 = {"a": env.export("a", 0.0, round_index=2), "b": env.export("b", 0.2, round_index=2)}
    r2, out2 = env.aggregate(str(out1 / "global_model"), updates2, round_index=2, **opt)
    # v2 = 0.9 * 0.2 + 0.1 = 0.28, x2 = x1 + 0.28 = x0 + 0.48
    m2 = read_global_model(out2 / "global_model")
    assert_model(m2.tensors, expected(0.48))
    assert (r2["version"], m2.meta["parent"]) == (2, "v1")
    assert read_latest(env.bucket, RUN).version == 2


def test_weighted_fedavg_uses_revealed_example_counts(env):
    env.site("a")
    env.site("b")
    updates = {
        "a": env.export("a", 1.0, num_examples=30),
        "b": env.export("b", 0.0, num_examples=10),
    }
    report, out = env.aggregate(env.previous(), updates)
    assert_model(read_global_model(out / "global_model").tensors, expected(0.75))
    assert report["notes"]["weights"] == "num_examples"


def test_hidden_example_counts_give_a_uniform_mean(env):
    env.site("a")
    env.site("b")
    updates = {"a": env.export("a", 1.0, num_examples=30), "b": env.export("b", 0.0)}
    report, out = env.aggregate(env.previous(), updates)
    assert_model(read_global_model(out / "global_model").tensors, expected(0.5))
    assert report["notes"]["weights"] == "uniform: num_examples not revealed by b"


def test_krum_with_too_few_updates_fails_before_publishing(env):
    for name in ("a", "b", "c"):
        env.site(name)
    updates = {n: env.export(n, 0.1) for n in ("a", "b", "c")}
    with pytest.raises(AggregationError, match="multi_krum"):
        env.aggregate(env.previous(), updates, rule="multi_krum", rule_params_json='{"f": 1}')
    assert read_latest(env.bucket, RUN) is None


def test_two_coordinators_aggregating_the_same_round(env):
    for name in ("a", "b", "c"):
        env.site(name)
    updates = {"a": env.export("a", 0.1), "b": env.export("b", 0.3), "c": env.export("c", 0.8)}
    previous = env.previous()
    rules = ["fedavg", "median"]  # two coordinators configured differently: 0.4 vs 0.3
    results: list[object] = [None, None]
    barrier = threading.Barrier(2)

    def coordinator(i: int) -> None:
        barrier.wait(timeout=30)
        try:
            results[i] = env.aggregate(previous, updates, rule=rules[i], kfp_job_id=f"job-{i}")
        except Exception as exc:  # collected and asserted below
            results[i] = exc

    threads = [threading.Thread(target=coordinator, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    errors = [r for r in results if isinstance(r, Exception)]
    assert len(errors) == 1 and isinstance(errors[0], PublishConflictError), results
    assert "nothing" in str(errors[0])
    won = next(i for i, r in enumerate(results) if not isinstance(r, Exception))
    latest = load_latest(env.bucket, RUN)
    assert latest.pointer.version == 1
    assert latest.meta["kfp_job_id"] == f"job-{won}" and latest.meta["rule"] == rules[won]
    assert_model(load_tensors(latest.model_bytes), expected([0.4, 0.3][won]))
    # the loser, retried, is still refused; the winner's task, retried, is confirmed
    with pytest.raises(PublishConflictError, match="is at version 1, but this round builds on"):
        env.aggregate(previous, updates, rule=rules[1 - won])
    report, _ = env.aggregate(previous, updates, rule=rules[won])
    assert "already published with this exact model" in report["notes"]["publish"]
    assert read_latest(env.bucket, RUN).generation == latest.pointer.generation


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"rule": "mean"}, "unknown aggregation rule 'mean'"),
        (
            {"rule": "trimmed_mean", "rule_params_json": '{"trim": 1}'},
            r"no parameter\(s\) \['trim'\]",
        ),
        ({"rule_params_json": "[1]"}, "expected a JSON object"),
        ({"server_optimizer": "adam"}, "unknown server optimizer 'adam'"),
        ({"optimizer_params_json": '{"momentum": 2.0}'}, "fedavg"),
    ],
)
def test_bad_settings_fail_before_any_update_is_read(env, settings, message):
    # the update folder does not even exist: settings are checked first
    with pytest.raises(AggregationError, match=message):
        env.aggregate(env.previous(), {"a": str(env.tmp / "nowhere")}, **settings)
    assert read_latest(env.bucket, RUN) is None


def test_edited_config_inputs_are_refused_before_anything_is_read(env):
    env.site("a")
    compiled = config_digest(
        coordinator_json=canonical_json(env.coordinator),
        sites_json=sites_json(list(env.kits.values())),
        policies_json=policies_json(list(env.kits.values())),
    )
    # someone pointed site a at another endpoint in the run form
    edited = json.loads(sites_json(list(env.kits.values())))
    edited["a"]["object_store"]["endpoint"] = "attacker.example:9000"
    with pytest.raises(ConfigDigestError, match="aggregate round 1: coordinator_json, "):
        env.aggregate(
            env.previous(),
            {"a": str(env.tmp / "nowhere")},
            sites_json=json.dumps(edited),
            config_digest=compiled,
        )
    assert read_latest(env.bucket, RUN) is None


@pytest.mark.parametrize("bad", ["../other-run", "a/b", ".."])
def test_a_run_id_unsafe_as_an_object_key_is_refused_before_anything_is_read(env, bad):
    # models/<run>/… on the coordinator's bucket: `../other-run` would reach another run's models
    with pytest.raises(RunIdError, match="aggregate round 1: run id .* not usable in object keys"):
        env.aggregate(env.previous(), {"a": str(env.tmp / "nowhere")}, run_id=bad)
    assert list(env.bucket.list_blobs()) == []


def test_anomalous_updates_are_flagged_then_quarantined_across_rounds(env):
    for name in ("a", "b", "c", "bad"):
        env.site(name)
    coordinator_policy = make_policy("coordinator", quarantine_after=2)
    policies = json.loads(policies_json(list(env.kits.values())))
    policies["coordinator"] = json.loads(canonical_json(coordinator_policy))
    texts = {"policies_json": json.dumps(policies)}

    def round_(index: int, previous: str, bad: float):
        updates = {
            s: env.export(s, v, round_index=index)
            for s, v in (("a", 0.5), ("b", 0.4), ("c", 0.5), ("bad", bad))
        }
        return env.aggregate(previous, updates, round_index=index, **texts)

    # round 1: 'bad' sends −5 everywhere: flagged, counted, still averaged (k = 2)
    r1, out1 = round_(1, env.previous(), -5.0)
    flag = r1["anomaly"]["flagged"]["bad"]
    assert flag.startswith("bad: ") and "norm 10.0× the median" in flag
    assert "cosine -1.00 to the robust centre" in flag
    assert sorted(r1["anomaly"]["flagged"]) == ["bad"] and r1["anomaly"]["quarantined"] == {}
    assert r1["contributors"] == ["a", "b", "bad", "c"]
    # round 2: flagged again → quarantined now: skipped, the reason in `rejected`
    r2, out2 = round_(2, str(out1 / "global_model"), -5.0)
    reason = r2["rejected"]["bad"]
    assert reason.startswith("quarantined in round 2: flagged in 2 consecutive rounds")
    assert r2["contributors"] == ["a", "b", "c"] and r2["anomaly"]["quarantined"] == {"bad": reason}
    meta = read_global_model(out2 / "global_model").meta
    assert meta["health"]["bad"]["quarantined"]["round"] == 2
    assert meta["health"]["a"] == {
        "scored": 2,
        "flagged": 0,
        "consecutive": 0,
        "quarantined": None,
        "last_reason": "",
    }
    # round 3: 'bad' behaves, but stays skipped; the model moves by mean(0.5, 0.4, 0.5)
    r3, out3 = round_(3, str(out2 / "global_model"), 0.5)
    assert r3["rejected"]["bad"] == reason and "bad" not in r3["anomaly"]["scores"]
    model = read_global_model(out3 / "global_model")
    step1 = (0.5 + 0.4 + 0.5 - 5.0) / 4
    assert_model(model.tensors, expected(step1 + 2 * (1.4 / 3)))


def test_a_3e38_update_does_not_get_through_plain_fedavg(env):
    """Issue #11 item 5: one site sending 3e38 everywhere was averaged into the model."""
    for name in ("a", "b", "huge"):
        env.site(name)
    updates = {
        "a": env.export("a", 0.5),
        "b": env.export("b", 0.25),
        "huge": env.export("huge", 3e38),
    }
    report, out = env.aggregate(env.previous(), updates)
    assert report["contributors"] == ["a", "b"]
    # norms: 0.25·√23, 0.5·√23, 3e38·√23 (float64, 23 parameters): the median is 0.5·√23
    assert report["rejected"]["huge"] == (
        "norm guard: update L2 norm 1.439e+39 is 6e+38× the round's median update norm 2.398 "
        "(limit 10×, coordinator policy aggregation.norm_guard_factor)"
    )
    assert_model(read_global_model(out / "global_model").tensors, expected(0.375))


def test_a_claimed_count_is_capped_before_it_weighs(env):
    """Issue #11 item 5: a site claiming 10^12 examples dominated FedAvg."""
    for name in ("a", "b", "c"):
        env.site(name)
    updates = {
        "a": env.export("a", 1.0, num_examples=10**12),
        "b": env.export("b", 0.0, num_examples=10),
        "c": env.export("c", 0.0, num_examples=20),
    }
    report, out = env.aggregate(env.previous(), updates)
    # no declared maximum: capped at 10 × the lower median claim 20 = 200 → 200 / 230
    assert_model(read_global_model(out / "global_model").tensors, expected(200 / 230))
    assert report["notes"]["weights_capped"] == {
        "a": "claimed 1000000000000 examples, above 200 (no declared maximum: 10× the round's "
        "median claim 20); weighted as 200"
    }


def test_a_site_declared_maximum_caps_its_claimed_count(env):
    for name in ("a", "b"):
        env.site(name)
    kit = env.kits["a"]
    doc = kit.site.dict()
    doc["data"]["num_examples"] = {"min": 5, "max": 30}
    env.kits["a"] = dataclasses.replace(kit, site=Site.parse_obj(doc))
    updates = {
        "a": env.export("a", 1.0, num_examples=10**12),
        "b": env.export("b", 0.0, num_examples=30),
    }
    report, out = env.aggregate(env.previous(), updates)
    assert_model(read_global_model(out / "global_model").tensors, expected(30 / 60))
    assert report["notes"]["weights_capped"] == {
        "a": "claimed 1000000000000 examples, above 30 (a data.num_examples.max); weighted as 30"
    }


def test_the_coordinator_policy_rule_is_enforced(env):
    for name in ("a", "b", "c"):
        env.site(name)
    policies = json.loads(policies_json(list(env.kits.values())))
    own = json.loads(canonical_json(make_policy("coordinator")))
    own["aggregation"]["rule"] = "screened_geometric_median"
    policies["coordinator"] = own
    texts = {"policies_json": json.dumps(policies)}
    # a run asking for another rule is refused before any update is read
    with pytest.raises(
        AggregationError,
        match="rule 'fedavg': the coordinator's policy coordinator sets aggregation.rule "
        "'screened_geometric_median'",
    ):
        env.aggregate(env.previous(), {"a": str(env.tmp / "nowhere")}, **texts)
    assert read_latest(env.bucket, RUN) is None
    # the policy's rule: 'c' points the other way, the screen drops it, the median of a, b
    updates = {s: env.export(s, v) for s, v in (("a", 0.5), ("b", 0.3), ("c", -0.4))}
    report, out = env.aggregate(env.previous(), updates, rule="screened_geometric_median", **texts)
    assert report["rule"] == "screened_geometric_median"
    assert "c" in report["anomaly"]["flagged"]
    assert_model(read_global_model(out / "global_model").tensors, expected(0.4))
