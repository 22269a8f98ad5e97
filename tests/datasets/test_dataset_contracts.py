"""Data contracts agree with scikit-learn's bundled data and describe it correctly."""

from __future__ import annotations

import numpy as np
import pytest

from components.datasets.contracts import LABEL, UnknownDatasetError, get_contract
from components.datasets.prepare import load_frame


@pytest.mark.parametrize(
    ("dataset", "num_features", "num_classes", "rows"),
    [("breast_cancer", 30, 2, 569), ("digits", 64, 10, 1797)],
)
def test_contract_matches_bundled_data(dataset, num_features, num_classes, rows):
    contract = get_contract(dataset)
    frame = load_frame(dataset)
    assert contract.num_features == num_features
    assert contract.num_classes == num_classes
    assert list(frame.columns) == contract.columns
    assert contract.columns[-1] == LABEL
    assert len(frame) == rows
    assert sorted(frame[LABEL].unique().tolist()) == list(contract.labels)
    assert str(frame[LABEL].dtype) in contract.label_dtypes
    for spec in contract.features:
        column = frame[spec.name]
        assert str(column.dtype) in contract.feature_dtypes
        assert column.notna().all()
        assert column.min() >= spec.min_value, spec.name
        assert column.max() <= spec.max_value, spec.name


def test_breast_cancer_names_are_snake_case_in_sklearn_order():
    names = get_contract("breast_cancer").feature_names
    assert names[:3] == ["mean_radius", "mean_texture", "mean_perimeter"]
    assert names[10] == "radius_error"
    assert names[27] == "worst_concave_points"
    assert len(set(names)) == 30


def test_digits_pixels_are_integers_0_to_16():
    frame = load_frame("digits")
    pixels = frame.drop(columns=[LABEL]).to_numpy()
    assert pixels.dtype == np.int64
    assert pixels.min() == 0 and pixels.max() == 16


def test_unknown_dataset_lists_known_ones():
    with pytest.raises(UnknownDatasetError, match=r"'iris'.*breast_cancer, digits"):
        get_contract("iris")
