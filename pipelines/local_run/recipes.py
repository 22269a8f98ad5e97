"""Per-dataset training recipes of `fedpipe run --local` (pure).

The compiled pipeline's defaults (1 local epoch, batch 32, lr 0.1, plain FedAvg) leave each
site with 3–11 optimizer steps per round, far fewer than the centralized baseline takes over
the same epochs, so a 5-round local run was under-trained. A local run therefore starts from
the recipe of its `--example` (`recipes.yaml` beside this module: data, not code); every
`--param NAME=VALUE` wins over it. The centralized baseline uses the same batch size,
learning rate and rounds × local epochs.

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
from pathlib import Path
from typing import Any

RECIPES_FILE = Path(__file__).with_name("recipes.yaml")


def load_recipes(path: Path = RECIPES_FILE) -> dict[str, dict[str, Any]]:
    """{example name: {pipeline parameter: value}} from the recipes YAML file."""
    import yaml

    doc = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    if not isinstance(doc, dict) or not all(isinstance(v, dict) for v in doc.values()):
        raise ValueError(f"{path}: expected {{example: {{parameter: value}}}}")
    return {str(k): dict(v) for k, v in doc.items()}


RECIPES: dict[str, dict[str, Any]] = load_recipes()


def recipe_arguments(
    dataset: str, declared: Mapping[str, Any], overrides: Mapping[str, Any]
) -> dict[str, Any]:
    """The recipe of `dataset` restricted to parameters the pipeline `declared` and the user
    did not set in `overrides`; {} for a dataset without a recipe."""
    recipe = RECIPES.get(dataset, {})
    return {k: v for k, v in recipe.items() if k in declared and k not in overrides}
