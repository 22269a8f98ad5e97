"""The GX suite on real breast-cancer/digits site tables and on each kind of bad data.

Every summary is scanned for the raw cell values of the table it describes.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from components.datasets.prepare import load_frame, split_federation
from components.validate.suite import run_suite, summarize
from pipelines.config.loader import contract_by_name
from tests.support.site_inputs import leaked_values

SITES = ["hospital-berlin", "hospital-paris", "clinic-boston"]
SITE = "hospital-berlin"


def _site_train(dataset: str) -> pd.DataFrame:
    fed = split_federation(
        load_frame(contract_by_name(dataset)),
        contract_by_name(dataset),
        SITES,
        np.random.default_rng(5),
    )
    return fed.sites[SITE].train


@pytest.fixture(scope="module")
def bc_train() -> pd.DataFrame:
    return _site_train("breast_cancer")


def _summary(frame: pd.DataFrame, dataset: str = "breast_cancer") -> dict:
    return summarize(SITE, len(frame), run_suite(contract_by_name(dataset), frame))


def test_real_breast_cancer_site_passes(bc_train):
    summary = _summary(bc_train)
    assert summary["passed"] is True, summary["reason"]
    assert summary["row_count"] == len(bc_train) == 122
    assert len(summary["expectations"]) == 126
    assert all(e["success"] for e in summary["expectations"])
    assert leaked_values(json.dumps(summary), bc_train) == set()


def test_real_digits_site_passes():
    frame = _site_train("digits")
    summary = _summary(frame, "digits")
    assert summary["passed"] is True, summary["reason"]
    assert len(summary["expectations"]) == 2 + 4 * 64 + 4


def _drop_radius(f):
    return f.drop(columns=["mean_radius"])


def _texture_as_text(f):
    return f.assign(mean_texture=[f"{v} units" for v in f["mean_texture"]])


def _nan_labels(f):
    return f.assign(label=f["label"].where(f.index % 40 != 0))  # 4 NaN labels


def _out_of_range(f):
    g = f.copy()
    g.loc[[3, 8], "mean_area"] = [-5.4321, 123456.789]
    return g


def _label_outside_set(f):
    g = f.copy()
    g.loc[5, "label"] = 7
    return g


def _extra_column(f):
    return f.assign(patient_name=[f"patient-{i}" for i in range(len(f))])


def _too_few_rows(f):
    return f.head(5)


@pytest.mark.parametrize(
    ("corrupt", "failing", "count"),
    [
        (_drop_radius, "expect_column_to_exist(mean_radius)", None),
        (_texture_as_text, "expect_column_values_to_be_in_type_list(mean_texture)", 122),
        (_nan_labels, "expect_column_values_to_not_be_null(label)", 4),
        (_out_of_range, "expect_column_values_to_be_between(mean_area)", 2),
        (_label_outside_set, "expect_column_values_to_be_in_set(label)", 1),
        (_extra_column, "expect_table_columns_to_match_set", None),
        (_too_few_rows, "expect_table_row_count_to_be_between", None),
    ],
)
def test_bad_data_abstains_naming_site_and_check(bc_train, corrupt, failing, count):
    bad = corrupt(bc_train)
    summary = _summary(bad)
    assert summary["passed"] is False
    assert summary["reason"].startswith(f"site {SITE} abstains:")
    assert failing in summary["reason"]
    entry = next(e for e in summary["expectations"] if e["name"] == failing)
    assert entry["success"] is False
    if count is not None:
        assert entry["unexpected_count"] == count
    text = json.dumps(summary)
    assert leaked_values(text, bad) == set()
    assert "patient-" not in text and "units" not in text


def test_scan_detects_what_raw_gx_results_would_leak(bc_train):
    """Control: GX's own result for the out-of-range table carries the injected raw values."""
    import great_expectations as gx

    bad = _out_of_range(bc_train)
    context = gx.get_context(mode="ephemeral")
    batch = (
        context.data_sources.add_pandas("p")
        .add_dataframe_asset("a")
        .add_batch_definition_whole_dataframe("b")
        .get_batch(batch_parameters={"dataframe": bad})
    )
    raw = batch.validate(
        gx.expectations.ExpectColumnValuesToBeBetween(
            column="mean_area", min_value=0.0, max_value=10000.0
        ),
        result_format="BASIC",
    ).to_json_dict()
    assert leaked_values(json.dumps(raw), bad) >= {-5.4321, 123456.789}
