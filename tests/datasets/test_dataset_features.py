"""Checked arrays from a site table and the non-leaking scalers, hand-computed."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from components.datasets.contracts import DataContract, FeatureSpec, get_contract
from components.datasets.features import DataError, fit_scaler, frame_to_arrays

TINY = DataContract(
    name="tiny",
    features=(FeatureSpec("a", 0.0, 10.0), FeatureSpec("b", 0.0, 10.0)),
    labels=(0, 1),
    min_rows=2,
    min_holdout_rows=1,
    scaling="site_zscore",
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


@pytest.mark.parametrize(
    ("frame", "check"),
    [
        (_frame().drop(columns=["b"]), "columns_present"),
        (_frame(a=["1", "x", "3"]), "numeric_dtype"),
        (_frame(a=[1.0, np.nan, 3.0]), "features_finite"),
        (_frame(label=[0, np.nan, 1]), "label_not_null"),
        (_frame(label=[0, 0.5, 1]), "label_integral"),
        (_frame(label=[0, 2, 1]), "label_in_set"),
        (_frame().iloc[:0], "min_rows"),
    ],
)
def test_bad_tables_name_site_and_check(frame, check):
    with pytest.raises(DataError) as info:
        frame_to_arrays(TINY, frame, "site-a")
    assert info.value.check == check
    assert str(info.value).startswith(f"site site-a: data check '{check}' failed")
    assert "'x'" not in str(info.value) and "0.5" not in str(info.value)  # no cell values


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
    contract = get_contract("digits")
    scaler = fit_scaler(contract, np.zeros((0, 64)))
    out = scaler.transform(np.full((1, 64), 8.0))
    np.testing.assert_allclose(out, np.full((1, 64), 0.5))


def test_zscore_scaler_refuses_wrong_shape():
    with pytest.raises(ValueError, match=r"shape \[n>0, 2\]"):
        fit_scaler(TINY, np.zeros((0, 2)))
