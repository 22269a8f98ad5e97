"""`fedpipe contract draft`: a valid, editable contract proposal from a sample (writes nothing)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import yaml

from components.domain.contract import DataContract
from pipelines.cli import main
from pipelines.contract_draft import DraftError, draft_contract, nice_range


@pytest.mark.parametrize(
    ("low", "high", "expected"),
    [
        # step: the first of 1, 2, 5, 10 x 10^k >= max(|low|, |high|, span) / 5; one step of
        # margin each side; never below 0 for non-negative values
        (6.981, 28.11, (0.0, 40.0)),  # step 10
        (143.5, 2501.0, (0.0, 4000.0)),  # step 1000
        (-3.2, 4.1, (-6.0, 8.0)),  # step 2
        (0.0521, 0.1634, (0.0, 0.25)),  # step 0.05
        (5.0, 5.0, (4.0, 6.0)),  # step 1
    ],
)
def test_ranges_widen_to_round_numbers(low, high, expected):
    assert nice_range(low, high) == expected


def _sample() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "age": [34, 51, np.nan, 70],
            "smoker": ["yes", "no", "no", None],
            "bmi": [22.5, 31.2, 27.0, 40.1],
            "active": [True, False, True, True],
            "outcome": [0, 2, 1, 0],
        }
    )


def test_draft_proposes_types_ranges_categories_and_nulls():
    doc, notes = draft_contract(_sample(), "Clinic Data", target="outcome")
    contract = DataContract.parse_obj(doc)
    by_name = {c.name: c for c in contract.columns}
    assert contract.name == "clinic_data"
    assert by_name["age"].type == "int" and by_name["age"].range == [0.0, 100.0]
    assert by_name["age"].nullable and by_name["age"].impute == 50
    assert by_name["smoker"].categories == ["no", "yes"] and by_name["smoker"].nullable
    assert by_name["bmi"].type == "float" and not by_name["bmi"].nullable
    assert by_name["active"].type == "bool"
    assert contract.target.task == "multiclass" and contract.labels == (0, 1, 2)
    assert "age: int, 1 empty of 4, observed 34 to 70" in notes
    # center/scale from the widened range only, not from the sample's statistics
    assert (by_name["bmi"].center, by_name["bmi"].scale) == (35.0, 25.0)


def test_a_numeric_target_with_many_values_is_regression():
    frame = pd.DataFrame({"x": np.arange(30.0), "y": np.linspace(25, 346, 30)})
    doc, _ = draft_contract(frame, "d", target="y")
    assert doc["target"]["task"] == "regression" and doc["target"]["range"] == [
        0.0,
        500.0,
    ]  # step 100


def test_unusable_samples_are_refused():
    with pytest.raises(DraftError, match="'nope' is not a column"):
        draft_contract(_sample(), "x", target="nope")
    ids = pd.DataFrame({"id": [f"p{i}" for i in range(60)], "label": [0, 1] * 30})
    with pytest.raises(DraftError, match="60 distinct text values"):
        draft_contract(ids, "x")


def test_the_command_prints_yaml_and_writes_nothing(tmp_path, capsys):
    sample = tmp_path / "visits.parquet"
    _sample().to_parquet(sample, index=False)
    before = sorted(tmp_path.iterdir())
    assert main(["contract", "draft", str(sample), "--target", "outcome"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("# yaml-language-server")
    assert DataContract.parse_obj(yaml.safe_load(out)).name == "visits"
    assert sorted(tmp_path.iterdir()) == before
    assert main(["contract", "draft", str(tmp_path / "missing.csv")]) == 2
