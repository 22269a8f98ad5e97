"""The federation in TFF's simulation runtime: it learns, and it computes what our FedAvg
(the pipeline's own local SGD + numpy averaging) computes, to 1e-4."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pipelines.cli import main
from pipelines.simulate.data import FederatedData, federated_data
from pipelines.simulate.reference import accuracy, fedavg_reference
from pipelines.simulate.spec import FederationSpec
from tests.support.paths import REPO

pytestmark = pytest.mark.slow

SITES = ("clinic-boston", "hospital-berlin", "hospital-paris")
IID = FederationSpec("breast_cancer", SITES, rounds=3, batch_size=16, learning_rate=0.1)


@pytest.fixture(scope="module")
def iid_data() -> FederatedData:
    return federated_data(IID.dataset, IID.site_ids, data_seed=IID.split_seed)


@pytest.fixture(scope="module")
def initial(iid_data: FederatedData) -> dict[str, np.ndarray]:
    from components.train.models import initial_weights

    return initial_weights("logreg", iid_data.num_features, iid_data.num_classes, IID.seed)


@pytest.fixture(scope="module")
def tff_iid(iid_data: FederatedData, initial: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    from pipelines.simulate.tff_runtime import simulate_federation

    return simulate_federation(IID, iid_data, initial)


def _max_abs_diff(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> float:
    assert sorted(a) == sorted(b)
    return max(float(np.max(np.abs(a[k] - b[k]))) for k in a)


def test_tff_learns_breast_cancer_in_three_rounds(
    iid_data: FederatedData, initial: dict[str, np.ndarray], tff_iid: dict[str, np.ndarray]
) -> None:
    majority = float(np.bincount(iid_data.test.y).max() / len(iid_data.test.y))
    before = accuracy(IID, iid_data, initial)
    after = accuracy(IID, iid_data, tff_iid)
    assert after > majority + 0.2, (before, after, majority)
    assert after > before
    assert sorted(tff_iid) == ["dense/bias", "dense/kernel"]
    assert tff_iid["dense/kernel"].shape == (30, 2)


def test_parity_with_numpy_fedavg_uniform(
    iid_data: FederatedData, initial: dict[str, np.ndarray], tff_iid: dict[str, np.ndarray]
) -> None:
    reference = fedavg_reference(IID, iid_data, initial)
    assert _max_abs_diff(tff_iid, reference) < 1e-4
    assert _max_abs_diff(initial, reference) > 1e-2  # it trained: the comparison is not vacuous


def test_parity_weighted_on_unequal_sites(initial: dict[str, np.ndarray]) -> None:
    from pipelines.simulate.tff_runtime import simulate_federation

    skewed = FederationSpec(
        "breast_cancer", SITES, rounds=2, alpha=0.5, weighting="num_examples", batch_size=8
    )
    data = federated_data(skewed.dataset, SITES, data_seed=1, alpha=0.5)
    sizes = sorted(len(s.y) for s in data.sites.values())
    assert sizes[0] < sizes[-1] * 0.8  # unequal sites, so the weighting matters
    weighted = simulate_federation(skewed, data, initial)
    assert _max_abs_diff(weighted, fedavg_reference(skewed, data, initial)) < 1e-4
    uniform = fedavg_reference(
        FederationSpec(**{**skewed.__dict__, "weighting": "uniform"}), data, initial
    )
    assert _max_abs_diff(weighted, uniform) > 1e-3


def test_cli_writes_named_tensors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import json

    from components.common.tensors import load_tensors

    args = [
        "simulate",
        "--sites",
        str(REPO / "sites"),
        "--policies",
        str(REPO / "policies"),
        "--rounds",
        "1",
        "--dataset",
        "breast_cancer",
    ]
    assert main([*args, "--out", str(tmp_path)]) == 0
    tensors = load_tensors((tmp_path / "model.npz").read_bytes())
    assert sorted(tensors) == ["dense/bias", "dense/kernel"]
    meta = json.loads((tmp_path / "meta.json").read_text())
    assert meta["spec"]["site_ids"] == list(SITES)
    assert meta["spec"]["weighting"] == "uniform"  # the example policies hide sample counts
    assert len(meta["rounds"]) == 1
    assert "pooled test accuracy" in capsys.readouterr().out

    # --compare: the same run, one weight moved by 2e-4, is outside the 1e-4 tolerance
    from components.common.tensors import dump_tensors

    moved = dict(tensors)
    moved["dense/bias"] = tensors["dense/bias"] + np.float32(2e-4) * np.array([1, 0], np.float32)
    (tmp_path / "moved.npz").write_bytes(dump_tensors(moved))
    again = [*args, "--out", str(tmp_path / "again"), "--compare", str(tmp_path / "moved.npz")]
    assert main(again) == 1
    out = capsys.readouterr().out
    assert "DIFFER (tolerance 0.0001)" in out
    diff = float(out.split("| = ")[1].split(":")[0])
    assert 1.9e-4 < diff < 2.1e-4


def test_runs_again_after_the_worker_was_reaped(
    iid_data: FederatedData, initial: dict[str, np.ndarray], tff_iid: dict[str, np.ndarray]
) -> None:
    """The CLI (atexit) and tests/conftest.py reap TFF's worker binary; a later run in the same
    process starts a new one."""
    from pipelines.simulate.reaper import reap_tff_workers
    from pipelines.simulate.tff_runtime import simulate_federation

    assert reap_tff_workers(), "the runs above should have left a TFF worker binary running"
    one_round = FederationSpec(**{**IID.__dict__, "rounds": 1})
    again = simulate_federation(one_round, iid_data, initial)
    assert _max_abs_diff(again, initial) > 1e-3
    assert reap_tff_workers(), "the run started a new worker binary"
