"""Pure parts of the TFF reference: FedAvg step, weights, batch-order seeds, reaper."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import psutil
import pytest

from pipelines.simulate.reaper import is_tff_worker, reap_children
from pipelines.simulate.spec import (
    FederationSpec,
    batch_order,
    client_weight,
    fedavg_step,
    shuffle_seed_for,
)

SITES = ("a", "b")


def test_fedavg_step_hand_computed() -> None:
    g = {"w": np.array([1.0, 2.0], np.float32)}
    local = [{"w": np.array([2.0, 2.0], np.float32)}, {"w": np.array([1.0, 5.0], np.float32)}]
    # uniform: 1 + (1 + 0)/2 = 1.5, 2 + (0 + 3)/2 = 3.5
    np.testing.assert_array_equal(fedavg_step(g, local, [1.0, 1.0])["w"], [1.5, 3.5])
    # weights 3:1: 1 + 3*1/4 = 1.75, 2 + 1*3/4 = 2.75
    np.testing.assert_array_equal(fedavg_step(g, local, [3.0, 1.0])["w"], [1.75, 2.75])
    with pytest.raises(ValueError, match="positive weight"):
        fedavg_step(g, local, [0.0, 0.0])


def test_client_weight() -> None:
    assert client_weight(FederationSpec("d", SITES), 112) == 1.0
    assert client_weight(FederationSpec("d", SITES, weighting="num_examples"), 112) == 112.0


def test_batch_order_is_seeded_per_site_and_round() -> None:
    spec = FederationSpec("d", SITES, batch_size=4, local_epochs=2)
    assert spec.split_seed == spec.seed == 0
    order = batch_order(spec, "a", 1, 10)
    assert len(order) == 2 * 8  # two epochs of two whole batches of 4
    assert len(set(order[:8].tolist())) == 8
    np.testing.assert_array_equal(order, batch_order(spec, "a", 1, 10))
    assert not np.array_equal(order, batch_order(spec, "a", 2, 10))
    assert not np.array_equal(order, batch_order(spec, "b", 1, 10))
    assert not np.array_equal(
        order, batch_order(FederationSpec(**{**spec.__dict__, "run_id": "other"}), "a", 1, 10)
    )
    assert shuffle_seed_for(0, "a", "r", 1) != shuffle_seed_for(1, "a", "r", 1)
    assert 0 <= shuffle_seed_for(0, "a", "r", 1) < 2**62


def test_split_and_scaling_are_the_pipelines(tmp_path) -> None:
    """The arrays equal what a site task reads back from `prepare_local`'s CSV files."""
    import pandas as pd

    from components.datasets.features import fit_scaler, frame_to_arrays
    from components.datasets.prepare import prepare_local
    from pipelines.config.loader import contract_by_name
    from pipelines.simulate.data import federated_data

    sites = ["clinic-boston", "hospital-berlin", "hospital-paris"]
    paths = prepare_local(contract_by_name("breast_cancer"), sites, tmp_path, seed=3)
    data = federated_data("breast_cancer", sites, data_seed=3)
    contract = contract_by_name("breast_cancer")
    for site in sites:
        x, y = frame_to_arrays(contract, pd.read_csv(paths[site]["train"]), site)
        np.testing.assert_array_equal(data.sites[site].x, fit_scaler(contract, x).transform(x))
        np.testing.assert_array_equal(data.sites[site].y, y)
    assert sum(len(s.y) for s in data.sites.values()) + len(data.test.y) < 569  # holdouts apart


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"site_ids": ()}, "non-empty and unique"),
        ({"site_ids": ("a", "a")}, "non-empty and unique"),
        ({"weighting": "median"}, "weighting 'median'"),
        ({"rounds": 0}, "rounds must be >= 1"),
        ({"learning_rate": 0.0}, "learning_rate must be > 0"),
    ],
)
def test_spec_refuses(kwargs: dict, fragment: str) -> None:
    args = {"dataset": "d", "site_ids": SITES, **kwargs}
    with pytest.raises(ValueError, match=fragment.replace("(", r"\(")):
        FederationSpec(**args)


def test_reap_children_kills_only_what_matches() -> None:
    """(Never reap every child in a test: the session's S3/GCS servers are children too.)"""
    keep = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    lingering = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        assert reap_children(lambda p: p.pid == lingering.pid, timeout_s=5.0) == [lingering.pid]
        assert lingering.wait(timeout=5) is not None
        assert keep.poll() is None
        assert not is_tff_worker(psutil.Process(keep.pid))
    finally:
        keep.kill()
        keep.wait()


def test_max_abs_difference() -> None:
    from pipelines.commands.simulate import choose_weighting, max_abs_difference

    a = {"w": np.array([1.0, 2.0], np.float32), "b": np.zeros(0, np.float32)}
    b = {"w": np.array([1.5, 1.0], np.float32), "b": np.zeros(0, np.float32)}
    assert max_abs_difference(a, b) == 1.0
    with pytest.raises(ValueError, match="names differ"):
        max_abs_difference(a, {"w": a["w"]})
    with pytest.raises(ValueError, match="shape"):
        max_abs_difference(a, {**a, "w": np.zeros(3, np.float32)})
    assert choose_weighting("auto", [True, True]) == "num_examples"
    assert choose_weighting("auto", [True, False]) == "uniform"
    assert choose_weighting("uniform", [True, True]) == "uniform"
