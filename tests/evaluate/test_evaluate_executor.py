"""`evaluate` executor end to end: real data in the S3-compatible server, a trained global model.

The global model is a softmax regression fitted in numpy on the site's own (scaled) training
table, so the claimed accuracy comes from real data.
"""

from __future__ import annotations

import io
import json

import numpy as np
import pandas as pd
import pytest

from components.common.global_model import GlobalModel, read_global_model, write_global_model
from components.common.site_task import TaskInputError, call_with_task
from components.datasets.features import fit_scaler, frame_to_arrays
from components.datasets.prepare import load_frame, split_federation, table_to_csv_bytes
from components.evaluate.executor import run as _run_executor
from components.evaluate.forward import softmax
from pipelines.config.loader import contract_by_name
from tests.support.site_inputs import (
    contract_json,
    leaked_values,
    policy_digest_input,
    policy_json,
    site_json,
)


def run(**inputs):  # as the component calls it
    return call_with_task(_run_executor, inputs)


pytestmark = pytest.mark.integration

SITE = "eval-paris"
BUCKET = "eval-paris-fl"
CONTRACT_KEYS = {
    "site_id",
    "round",
    "accuracy",
    "loss",
    "auc",
    "num_examples",
    "confusion_matrix",
    "labels",
}


def fit_softmax(x: np.ndarray, y: np.ndarray, num_classes: int, steps: int = 300) -> dict:
    """Full-batch gradient descent on the softmax-regression cross-entropy (lr 0.5)."""
    w = np.zeros((x.shape[1], num_classes))
    b = np.zeros(num_classes)
    onehot = np.eye(num_classes)[y]
    for _ in range(steps):
        g = softmax(x @ w + b) - onehot
        w -= 0.5 * x.T @ g / len(x)
        b -= 0.5 * g.mean(axis=0)
    return {"dense/kernel": w, "dense/bias": b}


def _put(client, key: str, frame_or_bytes) -> str:
    data = (
        frame_or_bytes if isinstance(frame_or_bytes, bytes) else table_to_csv_bytes(frame_or_bytes)
    )
    client.put_object(BUCKET, key, io.BytesIO(data), len(data))
    return f"s3://{BUCKET}/{key}"


def _setup(minio, tmp_path, dataset: str, model_meta: dict | None = None):
    if not minio.bucket_exists(BUCKET):
        minio.make_bucket(BUCKET)
    contract = contract_by_name(dataset)
    fed = split_federation(
        load_frame(contract_by_name(dataset)),
        contract_by_name(dataset),
        [SITE, "b", "c"],
        np.random.default_rng(3),
    )
    split = fed.sites[SITE]
    x, y = frame_to_arrays(contract, split.train, SITE)
    tensors = fit_softmax(fit_scaler(contract, x).transform(x), y, contract.num_classes)
    meta = {"version": 4, "model_name": "logreg", "dataset": dataset, "parent": None}
    meta.update(model_meta or {})
    write_global_model(tmp_path / "global", GlobalModel(tensors, meta))
    train_uri = _put(minio, f"{dataset}/train.csv", split.train)
    holdout_uri = _put(minio, f"{dataset}/holdout.csv", split.holdout)
    return split, train_uri, holdout_uri


def _run(minio, tmp_path, dataset, train_uri, holdout_uri, min_cell_count=5, **overrides):
    kwargs = dict(
        site_id=SITE,
        data_snapshot="2026-11-01",
        site_json=site_json(SITE, dataset=dataset, train_uri=train_uri, holdout_uri=holdout_uri),
        policy_json=policy_json(min_cell_count),
        run_id="run-1",
        kfp_job_id="job-1",
        round_index=3,
        dataset=dataset,
        contract_json=contract_json(dataset),
        model_name="logreg",
        global_model=str(tmp_path / "global"),
        evaluation=str(tmp_path / "evaluation"),
        client_factory=lambda: minio,
    )
    kwargs.update(overrides)
    kwargs.update(policy_digest_input(kwargs["policy_json"]))
    returned = run(**kwargs)
    text = (tmp_path / "evaluation" / "metrics.json").read_text()
    assert json.loads(text) == returned
    return returned, text


def test_breast_cancer_metrics_on_holdout(minio, tmp_path):
    split, train_uri, holdout_uri = _setup(minio, tmp_path, "breast_cancer")
    metrics, text = _run(minio, tmp_path, "breast_cancer", train_uri, holdout_uri)
    assert set(metrics) >= CONTRACT_KEYS
    assert metrics["status"] == "evaluated" and metrics["reason"] is None
    assert metrics["site_id"] == SITE and metrics["round"] == 3 and metrics["model_version"] == 4
    assert metrics["num_examples"] == len(split.holdout) == 30
    assert metrics["accuracy"] >= 0.9
    assert metrics["auc"] >= 0.95 and metrics["auc_method"] == "roc_auc"
    assert 0.0 < metrics["loss"] < 0.5
    assert metrics["labels"] == [0, 1]
    cells = [c for row in metrics["confusion_matrix"] for c in row]
    assert all(c is None or c >= 5 for c in cells)
    diagonal = [metrics["confusion_matrix"][i][i] for i in range(2)]
    if None not in diagonal:
        assert sum(diagonal) == round(metrics["accuracy"] * 30)
    for frame in (split.holdout, split.train):
        assert leaked_values(text, frame) == set()


def test_digits_metrics_with_suppressed_cells(minio, tmp_path):
    split, train_uri, holdout_uri = _setup(minio, tmp_path, "digits")
    metrics, _ = _run(minio, tmp_path, "digits", train_uri, holdout_uri, min_cell_count=3)
    assert metrics["accuracy"] >= 0.9
    assert metrics["auc_method"] == "macro_ovr_roc_auc" and metrics["auc"] > 0.95
    matrix = metrics["confusion_matrix"]
    assert len(matrix) == 10 and all(len(row) == 10 for row in matrix)
    assert any(c is None for row in matrix for c in row)  # zeros / singles off-diagonal
    assert all(c is None or c >= 3 for row in matrix for c in row)


def test_bad_holdout_abstains_naming_site_and_check(minio, tmp_path):
    split, train_uri, _ = _setup(minio, tmp_path, "breast_cancer")
    bad = split.holdout.assign(label=split.holdout["label"].where(split.holdout.index != 4))
    holdout_uri = _put(minio, "breast_cancer/holdout-nan.csv", bad)
    metrics, text = _run(minio, tmp_path, "breast_cancer", train_uri, holdout_uri)
    assert metrics["status"] == "abstained"
    assert metrics["reason"] == (
        f"site {SITE} abstains from evaluation: data check 'label_not_null': target label: 1 empty cell(s)"
    )
    assert metrics["accuracy"] is None and metrics["confusion_matrix"] is None
    assert leaked_values(text, bad) == set()

    empty_uri = _put(minio, "breast_cancer/holdout-empty.csv", b"")
    metrics, _ = _run(minio, tmp_path, "breast_cancer", train_uri, empty_uri)
    assert metrics["status"] == "abstained" and "'not_empty'" in metrics["reason"]

    gone = f"s3://{BUCKET}/breast_cancer/nope.csv"
    metrics, _ = _run(minio, tmp_path, "breast_cancer", train_uri, gone)
    assert "'readable'" in metrics["reason"] and "NoSuchKey" in metrics["reason"]


def test_global_model_for_another_model_raises(minio, tmp_path):
    _, train_uri, holdout_uri = _setup(minio, tmp_path, "breast_cancer", {"model_name": "mlp"})
    with pytest.raises(TaskInputError, match="has model_name 'mlp', task input 'logreg'"):
        _run(minio, tmp_path, "breast_cancer", train_uri, holdout_uri)


def test_scaler_comes_from_the_site_train_table_only(minio, tmp_path):
    """The holdout is scaled with mean/std of the site's training table, never its own: the
    loss of one repeated holdout row equals the hand-computed one under the train scaler
    (a scaler fitted on that holdout would map every feature to 0)."""
    split, train_uri, _ = _setup(minio, tmp_path, "breast_cancer")
    contract = contract_by_name("breast_cancer")
    one = pd.concat([split.holdout.iloc[[0]]] * 10, ignore_index=True)
    one_uri = _put(minio, "breast_cancer/h-one.csv", one)
    metrics, _ = _run(minio, tmp_path, "breast_cancer", train_uri, one_uri, min_cell_count=0)
    x_train, _ = frame_to_arrays(contract, split.train, SITE)
    x_one, y_one = frame_to_arrays(contract, one.head(1), SITE)
    tensors = read_global_model(tmp_path / "global").tensors
    z = fit_scaler(contract, x_train).transform(x_one).astype(np.float64)
    p = softmax(z @ tensors["dense/kernel"] + tensors["dense/bias"])[0, y_one[0]]
    assert metrics["loss"] == pytest.approx(-np.log(max(p, 1e-7)), rel=1e-5)
    assert metrics["num_examples"] == 10


def _charge(minio, run_id: str, round_: int, noise: float = 1.1):
    from components.privacy.accounting import dp_sgd_event
    from components.privacy.ledger import new_entry
    from components.privacy.ledger_store import LedgerStore

    event = dp_sgd_event(120, 8, 2, noise)

    def make(attempt: int):
        return new_entry(
            run_id=run_id,
            round_=round_,
            site_id=SITE,
            attempt=attempt,
            event=event,
            delta=1e-5,
            batch_size=8,
            epochs=2,
            num_examples=120,
            l2_norm_clip=1.0,
            created_at="2026-12-06T00:00:00+00:00",
            sampling="poisson",
        )

    return LedgerStore(minio, BUCKET, SITE).charge(run_id, round_, make)


@pytest.mark.parametrize("reveal", [True, False])
def test_membership_audit_leaves_only_auc_advantage_and_bound(minio, tmp_path, monkeypatch, reveal):
    """With `audit` (as the component runs it): the final model is attacked with its losses on
    the site's training rows vs holdout rows; the bound comes from this run's ledger charges
    (exact RDP composition, or the policy's bound when the sample count is hidden); the audit
    record in the site's chain carries the same figures."""
    from components.audit.store import S3Store, read_chain
    from components.audit.verify import verify_chain
    from components.common.manifest import generate_keypair
    from components.evaluate.membership import advantage_bound
    from components.privacy.accounting import epsilons

    private, public = generate_keypair()
    monkeypatch.setenv("FEDPIPE_SIGNING_KEY__EVAL_PARIS", private)
    split, train_uri, holdout_uri = _setup(minio, tmp_path, "breast_cancer")
    run_id = f"run-mia-{reveal}-{np.random.default_rng().integers(1 << 30)}"
    entries = [_charge(minio, run_id, r) for r in (1, 2)]
    _charge(minio, "another-run", 1)  # other runs do not count
    body = json.loads(site_json(SITE, train_uri=train_uri, holdout_uri=holdout_uri))
    body["signing"] = {"public_key": public}
    metrics, text = _run(
        minio,
        tmp_path,
        "breast_cancer",
        train_uri,
        holdout_uri,
        run_id=run_id,
        round_index=2,
        site_json=json.dumps(body),
        policy_json=policy_json(reveal_num_examples=reveal),
        audit=True,
    )
    m = metrics["membership"]
    expected = {"loss_threshold", "logistic", "bound", "epsilon", "delta", "above_bound"}
    expected |= {"non_members", "disclosure"} | ({"members"} if reveal else set())
    assert set(m) == expected
    for attack in ("loss_threshold", "logistic"):
        assert set(m[attack]) == {"auc", "advantage"}
        assert 0.0 <= m[attack]["advantage"] <= 1.0 and 0.0 <= m[attack]["auc"] <= 1.0
    assert m["non_members"] == len(split.holdout)
    if reveal:
        eps = epsilons([e.event for e in entries], 1e-5).rdp
        assert m["disclosure"] == "exact" and m["members"] == len(split.train)
        assert m["epsilon"] == pytest.approx(eps) and m["delta"] == 1e-5
    else:  # 2 charges × the policy's ε per round 3.0, 2δ: nothing that gives N away
        assert m["disclosure"] == "policy_bound"
        assert (m["epsilon"], m["delta"]) == (6.0, 2e-5)
    assert m["bound"] == pytest.approx(advantage_bound(m["epsilon"], m["delta"]))
    worst = max(m["loss_threshold"]["advantage"], m["logistic"]["advantage"])
    assert m["above_bound"] == (worst > m["bound"])
    for frame in (split.holdout, split.train):
        assert leaked_values(text, frame) == set()  # no loss, no row value leaves
    chain = read_chain(S3Store(minio, BUCKET), run_id, f"site/{SITE}", public)
    assert [r.kind for r in chain.records] == ["evaluation"]
    assert chain.records[0].body["membership"] == m
    assert verify_chain(chain) == [] and chain.checkpoints[0].count == 1


def test_a_dead_store_gives_an_abstention_not_a_failed_task(minio, tmp_path, monkeypatch):
    """The site's store went away mid-run: evaluate abstains naming the bucket, and the audit
    record it cannot write is named instead of failing the task (and the run)."""
    from minio import Minio
    from urllib3 import PoolManager
    from urllib3.util.retry import Retry

    from components.common.manifest import generate_keypair

    private, public = generate_keypair()
    monkeypatch.setenv("FEDPIPE_SIGNING_KEY__EVAL_PARIS", private)
    split, train_uri, holdout_uri = _setup(minio, tmp_path, "breast_cancer")
    dead = Minio("127.0.0.1:1", access_key="x", secret_key="y", secure=False)  # nothing listens
    dead._http = PoolManager(retries=Retry(total=0), timeout=1.0)
    body = json.loads(site_json(SITE, train_uri=train_uri, holdout_uri=holdout_uri))
    body["signing"] = {"public_key": public}
    metrics, _ = _run(
        minio,
        tmp_path,
        "breast_cancer",
        train_uri,
        holdout_uri,
        site_json=json.dumps(body),
        client_factory=lambda: dead,
        audit=True,
    )
    assert metrics["status"] == "abstained" and BUCKET in metrics["reason"]
    assert metrics["audit"].startswith("not in the site's audit chain: its bucket")
