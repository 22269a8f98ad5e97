"""Artifact files are written one way: canonical JSON, NaN refused before anything exists."""

from __future__ import annotations

import math

import pytest

from components.common.artifact_files import META_FILE, json_bytes, read_json, write_json
from components.common.global_model import GlobalModel, write_global_model


def test_json_is_canonical_sorted_compact_utf8(tmp_path):
    path = write_json(tmp_path / "a", "x.json", {"b": 1, "a": [1.5, None], "ü": "é"})
    assert path.read_bytes() == '{"a":[1.5,null],"b":1,"ü":"é"}'.encode()
    assert read_json(tmp_path / "a", "x.json") == {"a": [1.5, None], "b": 1, "ü": "é"}


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_non_finite_numbers_are_refused_and_nothing_is_written(tmp_path, bad):
    with pytest.raises(ValueError, match="JSON compliant"):
        write_json(tmp_path / "out", "round.json", {"loss": bad})
    assert not (tmp_path / "out").exists()
    with pytest.raises(ValueError):
        json_bytes([bad])


def test_a_global_model_with_nan_meta_leaves_no_folder(tmp_path):
    meta = {"version": 1, "model_name": "m", "dataset": "d", "parent": None, "loss": math.nan}
    with pytest.raises(ValueError):
        write_global_model(tmp_path / "gm", GlobalModel({}, meta))
    assert not (tmp_path / "gm").exists()
    meta["loss"] = 0.25
    write_global_model(tmp_path / "gm", GlobalModel({}, meta))
    assert read_json(tmp_path / "gm", META_FILE)["loss"] == 0.25
