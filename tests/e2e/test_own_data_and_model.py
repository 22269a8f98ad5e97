"""Bring your own data and model, end to end through `fedpipe run --local --data DIR`:
your Keras builder (`model.builder` in the contract) trains at the sites that hold good
files; a site whose file breaks the contract abstains naming the column and the rule, and
the others go on (quorum 2 of 3)."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import yaml

from components.datasets.io import table_to_parquet_bytes
from components.datasets.prepare import load_frame, split_federation
from pipelines.config.loader import contract_by_name
from tests.support.e2e import SITES, fedpipe
from tests.support.paths import REPO

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

BUILDER = "tests.support.user_models:small_mlp"


def test_own_files_and_own_model_with_one_bad_site(tmp_path):
    sites = tmp_path / "sites"
    shutil.copytree(REPO / "sites", sites)
    contract_path = sites / "contracts" / "breast_cancer.yaml"
    doc = yaml.safe_load(contract_path.read_text())
    doc["model"] = {"builder": BUILDER, "kwargs": {"hidden": 8}}
    contract_path.write_text(yaml.safe_dump(doc, sort_keys=False))

    contract = contract_by_name("breast_cancer")
    split = split_federation(load_frame(contract), contract, SITES, np.random.default_rng(1))
    data = tmp_path / "data"
    for site in SITES:
        (data / site).mkdir(parents=True)
        train, holdout = split.sites[site].train, split.sites[site].holdout
        if site == "hospital-paris":  # Parquet files are fine too
            (data / site / "train.parquet").write_bytes(table_to_parquet_bytes(train))
        elif site == "clinic-boston":  # breaks the contract: a column is missing
            train = train.drop(columns=["mean_area"])
            (data / site / "train.csv").write_text(train.to_csv(index=False))
        else:
            (data / site / "train.csv").write_text(train.to_csv(index=False))
        (data / site / "holdout.csv").write_text(holdout.to_csv(index=False))

    runs = tmp_path / "runs"
    proc = fedpipe(
        "run", "--local", "--rounds", "1", "--data", str(data), "--sites", str(sites),
        "--runs-dir", str(runs), "--run-id", "own-1", "--param", f"model_name={BUILDER}",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    out = proc.stdout
    assert "data: your files in" in out and "no pooled test set" in out
    boston = next(line for line in out.splitlines() if "validate   clinic-boston" in line)
    assert "FAILED its contract" in boston
    assert "expect_column_to_exist(mean_area)" in boston and "missing column(s) mean_area" in boston
    assert "global model v1 from 2 site(s)" in out
    summary = json.loads((runs / "own-1" / "summary.json").read_text())
    assert summary["model"] == BUILDER
    assert summary["rounds"][0]["contributors"] == ["hospital-berlin", "hospital-paris"]
    meta = json.loads((runs / "own-1" / "global_model" / "meta.json").read_text())
    assert meta["model_name"] == BUILDER
    # each site's files went into its own bucket only
    state = runs / ".state" / "s3"
    assert (state / "hospital-paris-fl" / "data" / "train.parquet").is_file()
    assert not (state / "hospital-berlin-fl" / "data" / "train.parquet").exists()
