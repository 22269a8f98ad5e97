"""run_bench's arithmetic: seconds per site-round, growth with sites, warm-vs-process speedup."""

from __future__ import annotations

import pytest

from pipelines.benchmarks.run_bench import BenchRun, federation_dirs, fitted_rows, growth, speedups


def test_growth_and_speedup_from_hand_computed_runs() -> None:
    runs = [
        BenchRun(3, 3, "warm", 40, 18.0, 30.0),  # 2.0 s per site-round
        BenchRun(30, 3, "warm", 400, 270.0, 300.0),  # 3.0 s per site-round
        BenchRun(3, 3, "process", 40, 90.0, 100.0),
    ]
    assert runs[0].per_site_round_s == 2.0
    assert growth(runs, "warm") == pytest.approx(1.5)
    assert growth(runs, "process") is None  # one size only
    assert speedups(runs) == {3: 5.0}


def test_generated_federations_load(tmp_path) -> None:
    from pipelines.config.loader import load_federation

    sites, policies = federation_dirs(10, tmp_path)
    federation = load_federation(sites, policies)
    assert len(federation.sites) == 10 and federation.coordinator is not None


def test_contract_rows_fit_the_split_only_where_they_must() -> None:
    # digits, 1797 rows: 1437 after the pooled test set; 143 per site at 10, 47 at 30
    assert fitted_rows(50, 10, 1797, 10) == (50, 10)
    assert fitted_rows(50, 10, 1797, 30) == (23, 4)
    assert fitted_rows(50, 10, 20, 30) == (1, 1)


def test_every_site_of_a_30_site_bench_meets_its_contract(tmp_path) -> None:
    import numpy as np

    from components.datasets.prepare import load_frame, split_federation
    from pipelines.config.loader import load_contract, load_federation

    sites, policies = federation_dirs(30, tmp_path, "digits")
    federation = load_federation(sites, policies)
    contract = load_contract(sites / "contracts" / "digits.yaml")
    split = split_federation(
        load_frame(contract), contract, list(federation.sites), np.random.default_rng(0)
    )
    assert len(split.sites) == 30
    for site_id, part in split.sites.items():
        assert len(part.train) >= contract.min_rows, site_id
        assert len(part.holdout) >= contract.min_holdout_rows, site_id
