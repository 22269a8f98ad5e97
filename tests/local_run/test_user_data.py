"""`fedpipe run --local --data DIR`: every site's own files, found by name, refused all at once."""

from __future__ import annotations

import pytest

from pipelines.config.loader import load_federation
from pipelines.local_run.options import RunError
from pipelines.local_run.runner import data_uris, files_digest, user_data
from pipelines.local_run.siteconf import local_site
from tests.support.paths import REPO


@pytest.fixture(scope="module")
def fed():
    return load_federation(REPO / "sites", REPO / "policies")


def _write(root, site, name, text="a,label\n1,0\n"):
    (root / site).mkdir(parents=True, exist_ok=True)
    (root / site / name).write_text(text)


def test_each_sites_files_are_found_and_get_uris_in_its_own_bucket(tmp_path, fed):
    for site in fed.sites:
        _write(tmp_path, site, "train.parquet" if site == "hospital-paris" else "train.csv")
        _write(tmp_path, site, "holdout.csv")
    paths = user_data(fed, tmp_path)
    assert paths["hospital-paris"]["train"].name == "train.parquet"
    paris = fed.sites["hospital-paris"]
    uris = data_uris(paris, paths["hospital-paris"])
    assert uris == (
        "s3://hospital-paris-fl/data/train.parquet",
        "s3://hospital-paris-fl/data/holdout.csv",
    )
    local = local_site(paris, endpoint=None, public_key=None, uris=uris)
    assert (local.data.uri, local.data.holdout_uri) == uris
    assert len(files_digest(paths)) == 64


def test_every_problem_of_the_folder_is_named_at_once(tmp_path, fed):
    _write(tmp_path, "hospital-berlin", "train.csv")
    _write(tmp_path, "hospital-berlin", "train.parquet")
    _write(tmp_path, "hospital-berlin", "holdout.csv")
    _write(tmp_path, "hospital-rome", "train.csv")
    with pytest.raises(RunError) as info:
        user_data(fed, tmp_path)
    text = str(info.value)
    assert "hospital-rome: not a site of the federation" in text
    assert "hospital-berlin: more than one train file" in text
    assert "clinic-boston: no train file" in text and "clinic-boston: no holdout file" in text
    with pytest.raises(RunError, match="not a directory"):
        user_data(fed, tmp_path / "nope")
