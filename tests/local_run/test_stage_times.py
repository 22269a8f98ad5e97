"""Time per stage and the share outside task bodies (pure, hand-computed)."""

from __future__ import annotations

import pytest

from pipelines.local_run.stage_times import body_seconds, format_stage_times, stage_times

LOG = [
    "[KFP Executor 2026-12-02 17:46:04,675 INFO]: Looking for component `train`",
    "[KFP Executor 2026-12-02 17:46:04,728 INFO]: Got executor_input:",
    "{",
    '  "inputs": {}',
    "}",
    "Epoch 1/1",
    "[KFP Executor 2026-12-02 17:46:06,228 INFO]: Wrote executor output file to /x/out.json.",
]


def test_body_is_the_executor_function_between_kfps_log_lines() -> None:
    assert body_seconds(LOG) == pytest.approx(1.5)
    assert body_seconds(LOG[:-1]) is None  # crashed before writing its outputs
    assert body_seconds(["Traceback (most recent call last):"]) is None


def test_stage_rows_in_pipeline_order_with_median_total_and_outside_share() -> None:
    seconds = {"t1": 4.0, "t2": 2.0, "t3": 3.0, "a1": 1.0}
    body = {"t1": 3.0, "t2": 1.0, "t3": None, "a1": 0.5}
    stages = {"t1": "train", "t2": "train", "t3": "train", "a1": "aggregate"}
    rows = stage_times(seconds, body, stages)
    assert [r.stage for r in rows] == ["train", "aggregate"]
    train = rows[0]
    assert (train.tasks, train.median_s, train.total_s, train.body_s) == (3, 3.0, 9.0, 4.0)
    assert train.outside_share == pytest.approx(5 / 9)
    lines = format_stage_times(rows, 12.0, "warm")
    assert lines[-1].split()[:3] == ["all", "4", "10.0"]
    assert "55%" in lines[-1] and "pipeline phase 12.0 s" in lines[-1]
    warm = format_stage_times(rows, 12.0, "warm", {"seconds": 9.5, "waited": 2.25})
    assert warm[-1] == "  warm worker: imports 9.5 s, of which the pipeline phase waited 2.2 s"
