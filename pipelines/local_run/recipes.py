"""Per-dataset training recipes of `fedpipe run --local` (pure).

The compiled pipeline's defaults (1 local epoch, batch 32, lr 0.1, plain FedAvg) leave each
site with 3–11 optimizer steps per round, far fewer than the centralized baseline takes over
the same epochs, so a 5-round local run was under-trained. A local run therefore starts from
the recipe of its `--dataset`; every `--param NAME=VALUE` wins over it. The centralized
baseline uses the same batch size, learning rate and rounds × local epochs.

* breast_cancer: batch 8, 5 local epochs, lr 0.05, plain FedAvg (server step 1.0, so
  `fedpipe simulate --like` can reproduce a DP-off run).
* wine, diabetes: as breast_cancer (diabetes: a linear model on the contract's scaled target;
  without DP the federated pooled-test R² matched the centralized one to 0.002 in a plain
  FedAvg simulation of 3 sites x 5 rounds).
* digits: the same plus a server learning rate of 2.0 (x ← x + 2·mean Δ): with plain FedAvg
  digits IID stayed 1.4–1.9 points behind the baseline in every setting tried.

Measured figures: README, "Benchmark and accuracy parity" (`python -m
pipelines.benchmarks.parity`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

RECIPES: dict[str, dict[str, Any]] = {
    "breast_cancer": {"batch_size": 8, "local_epochs": 5, "learning_rate": 0.05},
    "digits": {
        "batch_size": 8,
        "local_epochs": 5,
        "learning_rate": 0.05,
        "server_learning_rate": 2.0,
    },
    "wine": {"batch_size": 8, "local_epochs": 5, "learning_rate": 0.05},
    "diabetes": {"batch_size": 8, "local_epochs": 5, "learning_rate": 0.05},
}


def recipe_arguments(
    dataset: str, declared: Mapping[str, Any], overrides: Mapping[str, Any]
) -> dict[str, Any]:
    """The recipe of `dataset` restricted to parameters the pipeline `declared` and the user
    did not set in `overrides`; {} for a dataset without a recipe."""
    recipe = RECIPES.get(dataset, {})
    return {k: v for k, v in recipe.items() if k in declared and k not in overrides}
