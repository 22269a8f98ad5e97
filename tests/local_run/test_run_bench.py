"""run_bench's arithmetic: seconds per site-round, growth with sites, warm-vs-process speedup."""

from __future__ import annotations

import pytest

from pipelines.benchmarks.run_bench import BenchRun, federation_dirs, growth, speedups


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
