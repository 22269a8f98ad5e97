"""Seeded federation split: pooled test set, per-site train/holdout, IID or Dirichlet skew."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from components.datasets.prepare import (
    contract_site_rows,
    dirichlet_partition,
    iid_partition,
    load_frame,
    prepare_local,
    split_federation,
    stratified_test_split,
)
from pipelines.config.loader import contract_by_name

LABEL = "label"

SITES = ["hospital-berlin", "hospital-paris", "clinic-boston"]


def _rows(frame: pd.DataFrame) -> list[tuple]:
    return sorted(map(tuple, frame.to_numpy().tolist()))


def test_stratified_test_split_counts():
    labels = np.array([0] * 10 + [1] * 5)
    rest, test = stratified_test_split(labels, 0.2, np.random.default_rng(0))
    assert np.bincount(labels[test]).tolist() == [2, 1]  # round(0.2*10), round(0.2*5)
    assert sorted(np.concatenate([rest, test]).tolist()) == list(range(15))


def test_iid_partition_is_disjoint_cover_of_near_equal_parts():
    parts = iid_partition(10, 3, np.random.default_rng(1))
    assert [len(p) for p in parts] == [4, 3, 3]
    assert sorted(np.concatenate(parts).tolist()) == list(range(10))


def test_dirichlet_partition_covers_and_skews():
    labels = np.repeat(np.arange(10), 100)
    skewed = dirichlet_partition(labels, 3, 0.1, np.random.default_rng(2), min_rows=10)
    iid = dirichlet_partition(labels, 3, 1000.0, np.random.default_rng(2), min_rows=10)
    for parts in (skewed, iid):
        assert sorted(np.concatenate(parts).tolist()) == list(range(1000))

    def max_share(parts):  # largest fraction of one label inside one site
        return max(np.bincount(labels[p], minlength=10).max() / len(p) for p in parts)

    assert max_share(iid) < 0.15  # ~ 0.1 each
    assert max_share(skewed) > 0.3


def test_dirichlet_partition_gives_up_clearly():
    labels = np.repeat([0, 1], 5)
    with pytest.raises(ValueError, match="fewer than 20 rows"):
        dirichlet_partition(labels, 3, 0.5, np.random.default_rng(0), min_rows=20, max_attempts=5)


@pytest.mark.parametrize("alpha", [None, 0.5])
def test_split_is_a_partition_of_the_dataset(alpha):
    frame = load_frame(contract_by_name("breast_cancer"))
    fed = split_federation(
        frame, contract_by_name("breast_cancer"), SITES, np.random.default_rng(7), alpha=alpha
    )
    pieces = [fed.test] + [t for s in fed.sites.values() for t in (s.train, s.holdout)]
    assert _rows(pd.concat(pieces)) == _rows(frame)
    assert len(fed.test) == 113  # round(0.2*212) + round(0.2*357)
    for split in fed.sites.values():
        n = len(split.train) + len(split.holdout)
        assert len(split.holdout) == round(0.2 * n)
        assert list(split.train.columns) == list(frame.columns)


def test_split_is_seeded():
    frame = load_frame(contract_by_name("digits"))
    a = split_federation(
        frame, contract_by_name("digits"), SITES, np.random.default_rng(3), alpha=0.3
    )
    b = split_federation(
        frame, contract_by_name("digits"), SITES, np.random.default_rng(3), alpha=0.3
    )
    c = split_federation(
        frame, contract_by_name("digits"), SITES, np.random.default_rng(4), alpha=0.3
    )
    for site in SITES:
        pd.testing.assert_frame_equal(a.sites[site].train, b.sites[site].train)
    assert not a.sites[SITES[0]].train.equals(c.sites[SITES[0]].train)


def test_split_refuses_duplicate_sites():
    with pytest.raises(ValueError, match="unique"):
        split_federation(
            load_frame(contract_by_name("digits")),
            contract_by_name("digits"),
            ["a", "a"],
            np.random.default_rng(0),
        )


def test_prepare_local_writes_csv_that_round_trips(tmp_path):
    paths = prepare_local(contract_by_name("breast_cancer"), SITES, tmp_path, seed=11)
    frame = load_frame(contract_by_name("breast_cancer"))
    fed = split_federation(
        frame, contract_by_name("breast_cancer"), SITES, np.random.default_rng(11)
    )
    for site in SITES:
        train = pd.read_csv(paths[site]["train"])
        pd.testing.assert_frame_equal(train, fed.sites[site].train)  # floats exact
        holdout = pd.read_csv(paths[site]["holdout"])
        assert holdout.columns[-1] == LABEL and len(holdout) == len(fed.sites[site].holdout)
    assert paths["_test"]["test"].read_text().startswith("mean_radius,")


def test_contract_site_rows():
    assert (
        contract_site_rows(contract_by_name("breast_cancer"), 0.2) == 50
    )  # max(ceil(30/0.8), ceil(10/0.2))
    assert contract_site_rows(contract_by_name("digits"), 0.2) == 63  # max(ceil(50/0.8), 50)


@pytest.mark.parametrize("seed", range(5))
def test_skewed_sites_always_meet_the_contract(seed):
    from components.datasets.features import frame_to_arrays
    from pipelines.config.loader import contract_by_name

    contract = contract_by_name("breast_cancer")
    fed = split_federation(
        load_frame(contract_by_name("breast_cancer")),
        contract_by_name("breast_cancer"),
        SITES,
        np.random.default_rng(seed),
        alpha=0.1,
    )
    for site, split in fed.sites.items():
        assert len(split.train) >= contract.min_rows
        frame_to_arrays(contract, split.holdout, site, min_rows=contract.min_holdout_rows)
