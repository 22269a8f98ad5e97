"""Task names: `task_name` and `parse_task_name` are inverses, whatever words a site id holds."""

from __future__ import annotations

import pytest

from pipelines.local_run.progress import TaskInfo, task_map
from pipelines.task_names import TaskName, parse_task_name, task_name

TRICKY_SITES = ("hospital-trainee", "evaluate-lab", "export-co", "report", "r2", "lab-r3", "train")


@pytest.mark.parametrize("site", TRICKY_SITES)
@pytest.mark.parametrize("stage", ["train", "export", "evaluate"])
def test_site_round_names_round_trip(stage: str, site: str) -> None:
    name = task_name(stage, site, 7)
    assert parse_task_name(name) == TaskName(stage, site, 7)


@pytest.mark.parametrize("site", TRICKY_SITES)
def test_validate_names_round_trip(site: str) -> None:
    assert parse_task_name(task_name("validate", site)) == TaskName("validate", site, None)


def test_coordinator_names_round_trip() -> None:
    assert task_name("aggregate", round_index=12) == "aggregate-r12"
    assert parse_task_name("aggregate-r12") == TaskName("aggregate", None, 12)
    assert parse_task_name("initialize") == TaskName("initialize", None, None)
    assert parse_task_name("report") == TaskName("report", None, None)


def test_names_the_dag_does_not_build_are_refused() -> None:
    assert task_name("evaluate", "hospital-trainee", 1) == "evaluate-hospital-trainee-r1"
    for bad in ("trainer-x-r1", "train-x", "train--r1", "aggregate-x-r1", "report-x", "x"):
        assert parse_task_name(bad) is None, bad
    with pytest.raises(ValueError, match="site required"):
        task_name("train", None, 1)
    with pytest.raises(ValueError, match="round not allowed"):
        task_name("validate", "x", 1)


def test_task_map_reads_stage_words_in_site_ids_from_the_name() -> None:
    spec = {
        "root": {
            "dag": {
                "tasks": {
                    task_name("evaluate", site, 1): {
                        "componentRef": {"name": f"comp-{task_name('evaluate', site, 1)}"},
                        "taskInfo": {"name": task_name("evaluate", site, 1)},
                    }
                    for site in ("hospital-trainee", "export-co")
                }
            }
        }
    }
    tasks = task_map(spec)
    assert tasks["evaluate-hospital-trainee-r1"] == TaskInfo(
        "evaluate-hospital-trainee-r1", "evaluate", "hospital-trainee", 1
    )
    assert tasks["evaluate-export-co-r1"].stage == "evaluate"


def test_statistics_round_names_round_trip() -> None:
    for site in TRICKY_SITES:
        assert parse_task_name(task_name("stats", site)) == TaskName("stats", site, None)
    assert parse_task_name(task_name("scaling")) == TaskName("scaling", None, None)
    assert parse_task_name("scaling-x") is None
    with pytest.raises(ValueError, match="round not allowed"):
        task_name("stats", "x", 1)


def test_secagg_stage_names_round_trip() -> None:
    for site in TRICKY_SITES:
        assert parse_task_name(task_name("shares", site)) == TaskName("shares", site, None)
        assert parse_task_name(task_name("answer", site, 3)) == TaskName("answer", site, 3)
    for stage in ("roster", "relay"):
        assert parse_task_name(task_name(stage)) == TaskName(stage, None, None)
    assert task_name("request", round_index=2) == "request-r2"
    assert parse_task_name("request-r2") == TaskName("request", None, 2)
    assert parse_task_name("request-x-r2") is None
