"""The per-dataset recipe of `fedpipe run --local`: declared parameters only, --param wins."""

from __future__ import annotations

from pipelines.local_run.options import RunOptions, pipeline_arguments
from pipelines.local_run.recipes import RECIPES, recipe_arguments

DECLARED = {
    "run_id": "",
    "dp_enabled": True,
    "seed": 0,
    "batch_size": 32,
    "local_epochs": 1,
    "learning_rate": 0.1,
    "server_learning_rate": 1.0,
}


def test_recipe_fills_only_declared_parameters_the_user_left_alone() -> None:
    got = recipe_arguments("digits", {"batch_size": 32, "local_epochs": 1}, {"local_epochs": 2})
    assert got == {"batch_size": 8}
    assert recipe_arguments("no-such-dataset", DECLARED, {}) == {}


def test_breast_cancer_keeps_plain_fedavg_and_digits_takes_a_server_step_of_two() -> None:
    assert "server_learning_rate" not in RECIPES["breast_cancer"]
    assert RECIPES["digits"]["server_learning_rate"] == 2.0


def test_pipeline_arguments_apply_the_recipe_under_the_overrides() -> None:
    options = RunOptions(dataset="digits", overrides={"learning_rate": 0.3})
    args, unknown = pipeline_arguments(DECLARED, "r1", options)
    assert unknown == []
    assert args == {
        "run_id": "r1",
        "dp_enabled": True,
        "seed": 0,
        "batch_size": 8,
        "local_epochs": 5,
        "learning_rate": 0.3,
        "server_learning_rate": 2.0,
    }


def test_recipes_are_data_for_every_bundled_example() -> None:
    from pipelines.config.loader import EXAMPLE_CONTRACTS_DIR
    from pipelines.local_run.recipes import RECIPES_FILE, load_recipes

    assert RECIPES_FILE.suffix == ".yaml" and load_recipes() == RECIPES
    assert set(RECIPES) == {p.stem for p in EXAMPLE_CONTRACTS_DIR.glob("*.yaml")}
