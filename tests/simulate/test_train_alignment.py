"""The simulation's batch order is the train task's: same shuffle-seed derivation."""

from __future__ import annotations

from pipelines.simulate.spec import shuffle_seed_for


def test_shuffle_seed_is_the_train_tasks() -> None:
    from components.train.executor import _derive_seed

    for args in [(0, "hospital-berlin", "local-20261127-080000", 1), (7, "x", "simulate", 3)]:
        seed, site, run, round_index = args
        assert shuffle_seed_for(*args) == _derive_seed(seed, site, run, round_index)
