"""Bad site files: each gives an abstention naming the column and the rule (validate, GX),
never a crashed task; the same files also make train's array conversion refuse them."""

from __future__ import annotations

import io
import json

import numpy as np
import pandas as pd
import pytest

from components.common.site_task import call_with_task
from components.datasets.features import DataError, frame_to_arrays
from components.datasets.io import table_to_parquet_bytes
from components.datasets.prepare import load_frame
from components.validate.executor import run as _validate
from pipelines.config.loader import contract_by_name
from tests.support.site_inputs import contract_json, policy_digest_input, policy_json, site_json

pytestmark = pytest.mark.integration

SITE = "bad-files"
BUCKET = f"{SITE}-fl"
DIABETES = contract_by_name("diabetes")


@pytest.fixture()
def bucket(minio):
    if not minio.bucket_exists(BUCKET):
        minio.make_bucket(BUCKET)
    return minio


@pytest.fixture(scope="module")
def good() -> pd.DataFrame:
    return load_frame(DIABETES).iloc[:60].reset_index(drop=True)


def _validate_file(tmp_path, client, name: str, data: bytes) -> dict:
    client.put_object(BUCKET, f"data/{name}", io.BytesIO(data), len(data))
    inputs = dict(
        site_id=SITE,
        data_snapshot="s",
        site_json=site_json(SITE, dataset="diabetes", train_uri=f"s3://{BUCKET}/data/{name}"),
        policy_json=policy_json(),
        run_id="run-1",
        kfp_job_id="job-1",
        round_index=1,
        dataset="diabetes",
        contract_json=contract_json("diabetes"),
        summary=str(tmp_path / f"summary-{name}"),
        client_factory=lambda: client,
    )
    inputs.update(policy_digest_input(inputs["policy_json"]))
    return call_with_task(_validate, inputs)


def _csv(frame: pd.DataFrame) -> bytes:
    return frame.to_csv(index=False).encode()


def _cases(good: pd.DataFrame) -> dict[str, tuple[bytes, str, list[str]]]:
    """name -> (file bytes, file name, strings the reason must hold: column and rule)."""
    unknown = good.copy()
    unknown.loc[3, "sex"] = 3
    out_of_range = good.copy()
    out_of_range.loc[5, "bmi"] = 120.0
    wrong_type = good.copy()
    wrong_type["age"] = wrong_type["age"].astype(str) + " years"
    nulls = good.copy()
    nulls.loc[7, "bp"] = np.nan
    other_schema = good.rename(columns={"s1": "cholesterol"}).astype({"age": float})
    return {
        "missing column": (
            _csv(good.drop(columns=["s3"])),
            "train.csv",
            ["expect_column_to_exist(s3)", "missing column(s) s3"],
        ),
        "extra column": (
            _csv(good.assign(patient_id=range(len(good)))),
            "train.csv",
            ["expect_table_columns_to_match_set", "extra column(s) patient_id"],
        ),
        "unknown category": (
            _csv(unknown),
            "train.csv",
            ["expect_column_values_to_be_in_set(sex)"],
        ),
        "out of range": (
            _csv(out_of_range),
            "train.csv",
            ["expect_column_values_to_be_between(bmi)"],
        ),
        "wrong type": (
            _csv(wrong_type),
            "train.csv",
            ["expect_column_values_to_be_in_type_list(age)"],
        ),
        "null in a non-null column": (
            _csv(nulls),
            "train.csv",
            ["expect_column_values_to_not_be_null(bp)"],
        ),
        "empty file": (b"", "train.csv", ["data check 'not_empty' failed", "is empty"]),
        "parquet with another schema": (
            table_to_parquet_bytes(other_schema),
            "train.parquet",
            [
                "data check 'parquet_schema' failed",
                "missing column s1",
                "extra column cholesterol",
                "column age: Parquet type double, the contract needs int",
            ],
        ),
    }


CASES = [
    "missing column",
    "extra column",
    "unknown category",
    "out of range",
    "wrong type",
    "null in a non-null column",
    "empty file",
    "parquet with another schema",
]


@pytest.mark.parametrize("case", CASES)
def test_a_bad_file_is_an_abstention_naming_column_and_rule(tmp_path, bucket, good, case):
    data, name, expected = _cases(good)[case]
    summary = _validate_file(tmp_path, bucket, name, data)
    assert summary["passed"] is False
    assert summary["reason"].startswith(f"site {SITE} abstains")
    for text in expected:
        assert text in summary["reason"], (case, summary["reason"])
    written = json.loads((tmp_path / f"summary-{name}" / "summary.json").read_text())
    assert written == summary


def test_the_good_file_passes_as_csv_and_parquet(tmp_path, bucket, good):
    assert _validate_file(tmp_path, bucket, "train.csv", _csv(good))["passed"] is True
    parquet = table_to_parquet_bytes(good)
    assert _validate_file(tmp_path, bucket, "t.parquet", parquet)["passed"] is True


@pytest.mark.parametrize(
    ("change", "check", "column"),
    [
        (lambda f: f.assign(sex=f["sex"].replace({1: 3})), "in_categories", "sex"),
        (lambda f: f.assign(bmi=f["bmi"] + 200), "in_range", "bmi"),
        (lambda f: f.assign(age=f["age"].astype(str) + "y"), "type", "age"),
        (lambda f: f.assign(bp=np.nan), "not_null", "bp"),
        (lambda f: f.drop(columns=["s3"]), "columns_present", "s3"),
    ],
)
def test_train_refuses_the_same_files_naming_the_column(good, change, check, column):
    with pytest.raises(DataError) as info:
        frame_to_arrays(DIABETES, change(good.copy()), SITE)
    assert info.value.check == check and column in info.value.detail
