"""Your own Keras builder (`model.builder: package.module:function`): checked before anyone
trains (shapes against the contract, no batch-mixing layer), trained and scored like a
built-in model."""

from __future__ import annotations

import numpy as np
import pytest

from components.domain.contract import DataContract
from components.train.dpsgd import DpSgdConfig, train_dp_sgd
from components.train.models import ModelError, build_model, initial_weights, model_from_tensors
from pipelines.config.loader import contract_by_name

BUILDERS = "tests.support.user_models"


def test_a_batch_norm_layer_is_refused_naming_it():
    with pytest.raises(ModelError, match=r"bn_after_dense \(BatchNormalization\) mix examples"):
        build_model(f"{BUILDERS}:with_batch_norm", 30, 2)


def test_an_output_that_does_not_fit_the_contract_names_both_shapes():
    with pytest.raises(ModelError) as info:
        build_model(f"{BUILDERS}:three_outputs", 30, 2)
    text = str(info.value)
    assert "maps (None, 30) to (None, 3)" in text
    assert "needs (None, 30) to (None, 2)" in text


def test_unknown_builders_are_named():
    with pytest.raises(ModelError, match="cannot import no_such_pkg"):
        build_model("no_such_pkg.models:net", 3, 2)
    with pytest.raises(ModelError, match="has no nope"):
        build_model(f"{BUILDERS}:nope", 3, 2)


def test_builder_kwargs_and_seeded_init_give_the_same_tensors_twice():
    a = initial_weights(f"{BUILDERS}:small_mlp", 5, 1, seed=3, kwargs={"hidden": 4})
    b = initial_weights(f"{BUILDERS}:small_mlp", 5, 1, seed=3, kwargs={"hidden": 4})
    assert sorted(a) == sorted(b) and all(np.array_equal(a[k], b[k]) for k in a)
    assert {v.shape for v in a.values()} == {(5, 4), (4,), (4, 1), (1,)}


def test_a_user_model_trains_with_dp_and_reloads_from_its_tensors():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 4)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int64)
    name, kwargs = f"{BUILDERS}:small_mlp", {"hidden": 6}
    w0 = initial_weights(name, 4, 2, seed=0, kwargs=kwargs)
    config = DpSgdConfig(8, 10, 0.5, 0.5, 2.0, dp_enabled=True)
    result = train_dp_sgd(
        name, w0, x, y, 2, config, sampling_seed=1, noise_seed=2, model_kwargs=kwargs
    )
    model = model_from_tensors(name, 4, 2, result.tensors, kwargs)
    accuracy = float(np.mean(np.argmax(model(x).numpy(), axis=1) == y))
    assert accuracy > 0.8


def test_the_contract_declares_the_builder_and_its_kwargs():
    doc = contract_by_name("wine").dict()
    doc["model"] = {"builder": f"{BUILDERS}:small_mlp", "kwargs": {"hidden": 16}}
    contract = DataContract.parse_obj(doc)
    assert contract.builder_kwargs(f"{BUILDERS}:small_mlp") == {"hidden": 16}
    assert contract.builder_kwargs("logreg") is None
    doc["model"] = {"builder": "not a reference"}
    with pytest.raises(ValueError, match="package.module:function"):
        DataContract.parse_obj(doc)
