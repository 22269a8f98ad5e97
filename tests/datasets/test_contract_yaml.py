"""`kind: DataContract` documents: the bundled examples describe scikit-learn's data, and bad
documents are refused with every fault at once (file and field)."""

from __future__ import annotations

import json
import textwrap

import numpy as np
import pytest

from components.datasets.prepare import load_frame
from components.domain.contract import (
    ContractError,
    DataContract,
    check_private_scaling,
)
from pipelines.config.loader import (
    EXAMPLE_CONTRACTS_DIR,
    ConfigError,
    contract_by_name,
    load_contract,
)


@pytest.mark.parametrize(
    ("name", "num_features", "num_outputs", "task", "rows"),
    [
        ("breast_cancer", 30, 2, "binary", 569),
        ("digits", 64, 10, "multiclass", 1797),
        ("wine", 13, 3, "multiclass", 178),
        ("diabetes", 11, 1, "regression", 442),  # sex one-hot: 9 numeric + 2
    ],
)
def test_examples_match_bundled_data(name, num_features, num_outputs, task, rows):
    contract = contract_by_name(name)
    frame = load_frame(contract)
    assert (contract.num_features, contract.num_outputs, contract.task) == (
        num_features,
        num_outputs,
        task,
    )
    assert list(frame.columns) == contract.table_columns
    assert len(frame) == rows
    for column in contract.columns:
        values = frame[column.name]
        assert values.notna().all()
        if column.range is not None:
            assert column.range[0] <= values.min() and values.max() <= column.range[1], column.name
    if contract.is_regression:
        low, high = contract.target.range
        assert low <= frame[contract.label].min() and frame[contract.label].max() <= high
    else:
        assert sorted(frame[contract.label].unique().tolist()) == list(contract.labels)


def test_every_example_contract_uses_fixed_scaling_so_dp_runs_are_allowed():
    for path in sorted(EXAMPLE_CONTRACTS_DIR.glob("*.yaml")):
        contract = load_contract(path)
        assert contract.encoding.scaling == "fixed", path
        check_private_scaling(contract, True)


def test_digits_pixels_are_integers_scaled_by_16():
    contract = contract_by_name("digits")
    frame = load_frame(contract)
    pixels = frame.drop(columns=[contract.label]).to_numpy()
    assert pixels.dtype == np.int64 and pixels.min() == 0 and pixels.max() == 16
    assert (contract.encoding.center, contract.encoding.scale) == (0.0, 16.0)


def _doc(**changes):
    doc = {
        "apiVersion": "fedpipe.dev/v1",
        "kind": "DataContract",
        "name": "toy",
        "columns": [
            {"name": "age", "type": "int", "range": [0, 120]},
            {"name": "smoker", "type": "category", "categories": ["no", "yes"]},
        ],
        "target": {"task": "binary", "classes": [0, 1]},
        "rows": {"min_train": 5, "min_holdout": 2},
        "encoding": {"scaling": "fixed"},
    }
    doc.update(changes)
    return doc


def test_encoded_names_one_hot_in_category_order():
    contract = DataContract.parse_obj(_doc())
    assert contract.encoded_names == ["age", "smoker=no", "smoker=yes"]
    assert contract.table_columns == ["age", "smoker", "label"]


def test_site_zscore_is_refused_with_dp_on_and_says_why():
    contract = DataContract.parse_obj(_doc(encoding={"scaling": "site_zscore"}))
    check_private_scaling(contract, False)
    with pytest.raises(ContractError, match="outside the DP accounting"):
        check_private_scaling(contract, True)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"columns": [{"name": "x", "type": "float"}]}, "needs range"),
        ({"columns": [{"name": "x", "type": "category", "categories": []}]}, "needs categories"),
        ({"columns": [{"name": "x", "type": "int", "range": [0, 1], "nullable": True}]}, "impute"),
        ({"columns": [{"name": "x", "type": "int", "range": [5, 1]}]}, "min exceeds max"),
        ({"target": {"task": "binary", "classes": [0, 1, 2]}}, "exactly 2 classes"),
        ({"target": {"task": "regression"}}, "needs range"),
        ({"columns": [{"name": "label", "type": "bool"}]}, "also listed as a feature"),
        ({"colums": []}, "extra fields not permitted"),
    ],
)
def test_bad_contracts_are_refused(change, message):
    with pytest.raises(ValueError, match=message):
        DataContract.parse_obj(_doc(**change))


def test_a_contract_file_with_three_faults_reports_all_three(tmp_path):
    path = tmp_path / "toy.yaml"
    path.write_text(
        textwrap.dedent(
            """\
            apiVersion: fedpipe.dev/v1
            kind: DataContract
            name: toy
            columns:
              - {name: age, type: int}
              - {name: smoker, type: category, categories: [no, yes]}
            target: {task: multiclass, classes: [0, 1]}
            rows: {min_train: 5, min_holdout: 2}
            encoding: {scaling: fixed}
            """
        )
    )
    with pytest.raises(ConfigError) as info:
        load_contract(path)
    errors = info.value.errors
    assert len(errors) == 3, errors
    assert any("columns[0]" in e and "needs range" in e for e in errors)
    assert any("columns[1].categories" in e and 'quote it, e.g. "yes"' in e for e in errors)
    assert any("target" in e and "at least 3 classes" in e for e in errors)
    assert all(e.startswith(str(path)) for e in errors)


def test_unknown_contract_names_the_known_ones():
    with pytest.raises(ConfigError, match=r"'iris'.*breast_cancer, diabetes, digits, wine"):
        contract_by_name("iris")


def test_contract_json_round_trips():
    contract = contract_by_name("diabetes")
    assert DataContract.parse_raw(json.dumps(contract.dict())) == contract
