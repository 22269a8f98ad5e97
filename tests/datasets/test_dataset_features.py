"""Checked, encoded arrays from a site table and the contract's scalers, hand-computed."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from components.datasets.features import (
    DataError,
    fit_scaler,
    frame_to_arrays,
    scale_target,
    unscale_target,
)
from components.domain.contract import DataContract
from pipelines.config.loader import contract_by_name


def _contract(**changes) -> DataContract:
    doc = {
        "apiVersion": "fedpipe.dev/v1",
        "kind": "DataContract",
        "name": "tiny",
        "columns": [
            {"name": "a", "type": "float", "range": [0, 10]},
            {"name": "b", "type": "float", "range": [0, 10]},
        ],
        "target": {"task": "binary", "classes": [0, 1]},
        "rows": {"min_train": 2, "min_holdout": 1},
        "encoding": {"scaling": "site_zscore"},
    }
    doc.update(changes)
    return DataContract.parse_obj(doc)


TINY = _contract()
MIXED = _contract(
    columns=[
        {"name": "age", "type": "int", "range": [0, 120], "center": 50, "scale": 10},
        {"name": "smoker", "type": "bool", "nullable": True, "impute": False},
        {
            "name": "blood",
            "type": "category",
            "categories": ["A", "B", "O"],
            "nullable": True,
            "impute": "O",
        },
        {"name": "weight", "type": "float", "range": [0, 300], "nullable": True, "impute": 70},
    ],
    target={"name": "outcome", "task": "multiclass", "classes": [2, 5, 7]},
    encoding={"scaling": "fixed", "center": 0, "scale": 100},
)


def _frame(**overrides) -> pd.DataFrame:
    data = {"a": [1.0, 2.0, 3.0], "b": [4.0, 4.0, 4.0], "label": [0, 1, 1]}
    data.update(overrides)
    return pd.DataFrame(data)


def test_arrays_in_contract_order():
    frame = _frame()[["label", "b", "a"]]
    x, y = frame_to_arrays(TINY, frame, "site-a")
    assert x.tolist() == [[1.0, 4.0], [2.0, 4.0], [3.0, 4.0]]
    assert y.tolist() == [0, 1, 1] and y.dtype == np.int64


def test_mixed_types_impute_one_hot_and_class_indices_by_hand():
    frame = pd.DataFrame(
        {
            "age": [40, 60],
            "smoker": [True, None],
            "blood": ["B", None],
            "weight": [80.0, np.nan],
            "outcome": [7, 2],
        }
    )
    x, y = frame_to_arrays(MIXED, frame, "s")
    assert MIXED.encoded_names == ["age", "smoker", "blood=A", "blood=B", "blood=O", "weight"]
    assert x.tolist() == [[40, 1, 0, 1, 0, 80], [60, 0, 0, 0, 1, 70]]
    assert y.tolist() == [2, 0]  # 7 is the third class, 2 the first
    scaled = fit_scaler(MIXED, x[:0]).transform(x)
    # age: column constants (x - 50) / 10; weight: encoding defaults / 100; others unscaled
    np.testing.assert_allclose(scaled, [[-1, 1, 0, 1, 0, 0.8], [1, 0, 0, 0, 1, 0.7]], rtol=1e-6)


@pytest.mark.parametrize(
    ("frame", "check", "column"),
    [
        (_frame().drop(columns=["b"]), "columns_present", "b"),
        (_frame(a=["1", "x", "3"]), "type", "a"),
        (_frame(a=[1.0, np.nan, 3.0]), "not_null", "a"),
        (_frame(a=[1.0, 11.0, 3.0]), "in_range", "a"),
        (_frame(label=[0, np.nan, 1]), "label_not_null", "label"),
        (_frame(label=[0, 0.5, 1]), "label_integral", "label"),
        (_frame(label=[0, 2, 1]), "label_in_set", "label"),
        (_frame().iloc[:0], "min_rows", ""),
    ],
)
def test_bad_tables_name_site_check_and_column(frame, check, column):
    with pytest.raises(DataError) as info:
        frame_to_arrays(TINY, frame, "site-a")
    assert info.value.check == check
    assert str(info.value).startswith(f"site site-a: data check '{check}' failed")
    assert column in info.value.detail
    assert "'x'" not in str(info.value) and "0.5" not in str(info.value)  # no cell values


def test_unknown_category_names_the_column():
    frame = pd.DataFrame(
        {"age": [40], "smoker": [True], "blood": ["AB"], "weight": [80.0], "outcome": [2]}
    )
    with pytest.raises(DataError, match="column blood: 1 value") as info:
        frame_to_arrays(MIXED, frame, "s")
    assert info.value.check == "in_categories" and "AB" not in str(info.value)


def test_zscore_scaler_hand_computed():
    x = np.array([[1.0, 4.0], [2.0, 4.0], [3.0, 4.0]])
    scaler = fit_scaler(TINY, x)
    # mean (2, 4); population std (sqrt(2/3), 0 -> 1)
    np.testing.assert_allclose(scaler.center, [2.0, 4.0])
    np.testing.assert_allclose(scaler.scale, [np.sqrt(2 / 3), 1.0])
    out = scaler.transform(np.array([[2.0 + np.sqrt(2 / 3), 5.0]]))
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, [[1.0, 1.0]], rtol=1e-6)


def test_fixed_scaler_for_digits_needs_no_data():
    contract = contract_by_name("digits")
    scaler = fit_scaler(contract, np.zeros((0, 64)))
    out = scaler.transform(np.full((1, 64), 8.0))
    np.testing.assert_allclose(out, np.full((1, 64), 0.5))


def test_zscore_scaler_refuses_wrong_shape():
    with pytest.raises(ValueError, match=r"shape \[n>0, 2\]"):
        fit_scaler(TINY, np.zeros((0, 2)))


def test_regression_target_scaled_with_the_contract_constants():
    contract = contract_by_name("diabetes")  # center 150, scale 77
    y = np.array([150.0, 227.0])
    np.testing.assert_allclose(scale_target(contract, y), [0.0, 1.0])
    np.testing.assert_allclose(unscale_target(contract, np.array([[0.0], [1.0]])), y)
