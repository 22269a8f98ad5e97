"""kfp.local log parsing and progress lines (pure)."""

from __future__ import annotations

from pipelines.local_run.progress import (
    LogParser,
    TaskInfo,
    describe,
    error_lines,
    format_line,
    task_map,
)

SPEC = {
    "root": {
        "dag": {
            "tasks": {
                "train-hospital-berlin-r2": {
                    "componentRef": {"name": "comp-train-4"},
                    "taskInfo": {"name": "train-hospital-berlin-r2"},
                    "inputs": {
                        "parameters": {
                            "site_id": {"runtimeValue": {"constant": "hospital-berlin"}},
                            "round_index": {"runtimeValue": {"constant": 2}},
                        }
                    },
                },
                "aggregate-r3": {
                    "componentRef": {"name": "comp-aggregate-r3"},
                    "taskInfo": {"name": "aggregate-r3"},
                    "inputs": {"parameters": {"run_id": {"componentInputParameter": "run_id"}}},
                },
            }
        }
    }
}


def test_task_map_reads_site_round_and_stage() -> None:
    tasks = task_map(SPEC)
    assert tasks["train-4"] == TaskInfo("train-hospital-berlin-r2", "train", "hospital-berlin", 2)
    assert tasks["aggregate-r3"] == TaskInfo("aggregate-r3", "aggregate", "coordinator", 3)


def test_parser_yields_start_finish_with_task_log() -> None:
    p = LogParser()
    lines = [
        "08:00:56.100 - INFO - Executing task \x1b[96m'train-4'\x1b[0m",
        "08:00:56.101 - INFO - Streamed logs:",
        "    Traceback (most recent call last):",
        '    File "x.py", line 1',
        "    ValueError: site hospital-berlin: bad",
        "08:00:57.000 - ERROR - Task \x1b[96m'train-4'\x1b[0m finished with status \x1b[91mFAILURE\x1b[0m",
        "Pipeline \x1b[95m'federated-training'\x1b[0m finished with status FAILURE",
    ]
    events = [e for line in lines for e in p.feed(line)]
    assert [(e.kind, e.task, e.status) for e in events] == [
        ("start", "train-4", ""),
        ("finish", "train-4", "FAILURE"),
        ("pipeline", "federated-training", "FAILURE"),
    ]
    log = events[1].log
    assert error_lines(log)[-1] == "ValueError: site hospital-berlin: bad"
    assert error_lines(log)[0].startswith("Traceback")


def test_describe_each_stage() -> None:
    t = TaskInfo("t", "train", "s", 1)
    assert (
        describe(t, {"meta.json": {"status": "abstained", "reason": "budget"}})
        == "ABSTAINED: budget"
    )
    text = describe(
        t,
        {
            "meta.json": {
                "status": "trained",
                "num_examples": 90,
                "epsilon": 1.23456,
                "epsilon_pld": 1.0,
            }
        },
    )
    assert text == "trained on 90 rows, ε this round 1.235 RDP / 1.000 PLD"
    agg = TaskInfo("a", "aggregate", "coordinator", 1)
    text = describe(
        agg,
        {
            "round.json": {
                "version": 1,
                "contributors": ["a", "b"],
                "rule": "fedavg",
                "abstained": {"c": "budget"},
                "rejected": {},
            }
        },
    )
    assert text == "global model v1 from 2 site(s) (fedavg); abstained: c (budget); rejected: none"
    ev = TaskInfo("e", "evaluate", "s", 1)
    assert describe(ev, {"metrics.json": {"accuracy": 0.9123, "loss": 0.25}}) == (
        "holdout accuracy 91.2%, loss 0.250"
    )
    assert describe(ev, {}) == "done"
    regression = {"task": "regression", "r2": 0.41234, "mae": 43.2, "rmse": 55.01}
    assert describe(ev, {"metrics.json": regression}) == (
        "holdout R² 0.412, MAE 43.200, RMSE 55.010"
    )
    line = format_line(3.25, t, 5, "x")
    assert line.startswith("[   3.2s] round 1/5") and line.endswith("✓ x")


def test_error_lines_prefer_the_exception_over_the_schedulers_line() -> None:
    log = [
        "Traceback (most recent call last):",
        '  File "x.py", line 1',
        "ValueError: quorum not met",
        "",
        "fedpipe: task aggregate-r1 (aggregate, site coordinator, round 1) exited with code 1",
    ]
    assert error_lines(log, limit=1) == ["ValueError: quorum not met"]
    killed = ["epoch 1", "fedpipe: task train-x-r1 (train, site x, round 1) exceeded its timeout"]
    assert error_lines(killed, limit=1) == [killed[-1]]


def test_he_rounds_say_the_update_and_the_model_are_encrypted():
    export_task = TaskInfo("x", "export", "s", 1)
    ref = {"status": "exported", "bucket": "b", "key": "updates/r/round-0001/s"}
    assert describe(export_task, {"ref.json": {**ref, "tensors_key": ref["key"] + ".ckks"}}) == (
        "signed encrypted update written to s3://b/updates/r/round-0001/s"
    )
    assert describe(export_task, {"ref.json": {**ref, "tensors_key": ref["key"] + ".npz"}}) == (
        "signed update written to s3://b/updates/r/round-0001/s"
    )
    report = {
        "version": 2,
        "contributors": ["a", "b", "c"],
        "rule": "fedavg",
        "abstained": {},
        "rejected": {},
        "notes": {"protection": "he: the coordinator added 3 CKKS ciphertexts ..."},
    }
    assert describe(TaskInfo("a", "aggregate", "coordinator", 2), {"round.json": report}) == (
        "encrypted global model v2 from 3 site(s) (fedavg, ciphertexts added, sites decrypt); "
        "abstained: none; rejected: none"
    )
