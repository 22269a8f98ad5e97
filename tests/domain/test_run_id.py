"""The effective run id: run_id, else the KFP job id; only ids safe as one object-key segment."""

from __future__ import annotations

import pytest

from components.domain.run_id import RunIdError, effective_run_id


def test_run_id_wins_over_the_job_id():
    assert effective_run_id("run-1", "job-1", "initialize") == "run-1"
    assert effective_run_id("", "job-1", "initialize") == "job-1"
    assert effective_run_id("a" * 128, "", "t") == "a" * 128


@pytest.mark.parametrize(
    "bad",
    ["../x", "a/b", "a..b", ".hidden", "-x", "_x", "a b", "ä", "a" * 129, "models/x"],
)
def test_unsafe_run_ids_refused_naming_the_task(bad):
    with pytest.raises(RunIdError, match=r"aggregate round 2: run id .* not usable in object keys"):
        effective_run_id(bad, "job-1", "aggregate round 2")


def test_both_empty_refused():
    with pytest.raises(RunIdError, match="initialize: both run_id and kfp_job_id are empty"):
        effective_run_id("", "", "initialize")
