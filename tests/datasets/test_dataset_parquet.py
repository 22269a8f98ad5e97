"""CSV or Parquet by the URI's suffix; a Parquet schema is checked against the contract first."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from components.datasets.features import DataError, frame_to_arrays
from components.datasets.io import (
    parquet_type_problems,
    read_site_table,
    table_format,
    table_to_parquet_bytes,
)
from components.datasets.prepare import load_frame
from pipelines.config.loader import contract_by_name

WINE = contract_by_name("wine")


@pytest.mark.parametrize(
    ("uri", "kind"),
    [("s3://b/d/train.csv", "csv"), ("file:///x/T.PARQUET", "parquet"), ("s3://b/t.pq", "parquet")],
)
def test_format_follows_the_suffix(uri, kind):
    assert table_format(uri, "s") == kind


def test_an_unknown_suffix_is_refused():
    with pytest.raises(DataError, match=r"unknown table format \(name it \*\.csv"):
        table_format("s3://b/train.xlsx", "s")


def test_parquet_round_trips_and_gives_the_same_arrays_as_csv(tmp_path):
    frame = load_frame(WINE).iloc[:40]
    pq_path, csv_path = tmp_path / "train.parquet", tmp_path / "train.csv"
    pq_path.write_bytes(table_to_parquet_bytes(frame))
    frame.to_csv(csv_path, index=False)
    from_pq = read_site_table(f"file://{pq_path}", None, "s", WINE)
    from_csv = read_site_table(f"file://{csv_path}", None, "s", WINE)
    for a, b in zip(
        frame_to_arrays(WINE, from_pq, "s"), frame_to_arrays(WINE, from_csv, "s"), strict=False
    ):
        np.testing.assert_array_equal(a, b)


def test_another_schema_is_refused_naming_every_column_and_type(tmp_path):
    frame = load_frame(WINE).iloc[:10].rename(columns={"hue": "colour"})
    frame["alcohol"] = frame["alcohol"].astype(str)
    frame["label"] = frame["label"].astype(float)
    path = tmp_path / "train.parquet"
    path.write_bytes(table_to_parquet_bytes(frame))
    with pytest.raises(DataError) as info:
        read_site_table(f"file://{path}", None, "site-a", WINE)
    assert info.value.check == "parquet_schema"
    detail = info.value.detail
    assert "missing column hue" in detail and "extra column colour" in detail
    assert "column alcohol: Parquet type string, the contract needs float/int" in detail
    assert "column label: Parquet type double, the contract needs int" in detail


def test_schema_problems_accept_ints_for_floats_and_dictionary_strings():
    contract = contract_by_name("diabetes")  # sex: int categories; target regression
    fields = [pa.field(c, pa.int64()) for c in contract.table_columns]
    assert parquet_type_problems(contract, pa.schema(fields)) == []
    fields[1] = pa.field("sex", pa.dictionary(pa.int8(), pa.string()))
    assert parquet_type_problems(contract, pa.schema(fields)) == [
        "column sex: Parquet type dictionary<values=string, indices=int8, ordered=0>, "
        "the contract needs int"
    ]


@pytest.mark.parametrize("data", [b"", b"not parquet at all"])
def test_empty_or_broken_parquet_files_are_data_errors(tmp_path, data):
    path = tmp_path / "t.parquet"
    path.write_bytes(data)
    with pytest.raises(DataError) as info:
        read_site_table(f"file://{path}", None, "s", WINE)
    assert info.value.check == ("not_empty" if not data else "parquet")


def test_a_parquet_file_without_rows_is_empty(tmp_path):
    frame = load_frame(WINE).iloc[:0]
    buffer = io.BytesIO()
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), buffer)
    path = tmp_path / "t.parquet"
    path.write_bytes(buffer.getvalue())
    with pytest.raises(DataError, match="has no rows"):
        read_site_table(f"file://{path}", None, "s", WINE)


def test_csv_still_reads_without_a_contract(tmp_path):
    path = tmp_path / "t.csv"
    pd.DataFrame({"a": [1]}).to_csv(path, index=False)
    assert read_site_table(f"file://{path}", None, "s").shape == (1, 1)
