"""Warm workers: a task that raises, calls os._exit or overruns its timeout fails naming task,
site and round, and the same pool runs the next task; tasks do not share state or secrets."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from pipelines.local_run.progress import TaskInfo, task_map
from pipelines.local_run.task_env import task_environment, thread_environment
from pipelines.local_run.warm_pool import WarmPool
from pipelines.local_run.warm_worker import executor_program
from tests.support.paths import REPO

pytestmark = pytest.mark.slow  # the warm worker imports TensorFlow once (~10-45 s)

FEDPIPE_SCRIPT = (
    'p="$(mktemp -d)/ephemeral_component.py"; printf "%s" "$0" > "$p"\n'
    '_KFP_RUNTIME=true python3 -m kfp.dsl.executor_main --component_module_path "$p" "$@"\n'
)
MODULE = """
import os, sys, time, random

MARK = []  # module-global state: must not survive into the next task


def train_lab_r2(mode: str, out: str):
    import numpy as np

    state = {"mark_before": list(MARK), "rand": random.random(), "np": float(np.random.rand()),
             "secret": os.environ.get("FEDPIPE_S3_ACCESS_KEY__LAB"),
             "other": os.environ.get("FEDPIPE_S3_ACCESS_KEY__OTHER"),
             "secrets_dir": os.environ.get("FEDPIPE_SECRETS_DIR"), "cwd": os.getcwd()}
    MARK.append(1)
    if mode == "raise":
        raise ValueError("boom from the task body")
    if mode == "exit":
        os._exit(7)
    if mode == "sleep":
        time.sleep(120)
    with open(out, "w") as handle:
        handle.write(__import__("json").dumps(state))
"""


def program(mode: str, out: Path, tmp: Path) -> list[str]:
    executor_input = {
        "inputs": {"parameterValues": {"mode": mode, "out": str(out)}},
        "outputs": {"outputFile": str(tmp / f"executor-output-{mode}.json")},
    }
    return [
        "sh",
        "-ec",
        FEDPIPE_SCRIPT.replace("python3", sys.executable),
        MODULE,
        "--executor_input",
        json.dumps(executor_input),
        "--function_to_execute",
        "train_lab_r2",
    ]


@pytest.fixture(scope="module")
def pool(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WarmPool]:
    env = dict(os.environ, PYTHONPATH=str(REPO), TF_CPP_MIN_LOG_LEVEL="3")
    with WarmPool(env, tmp_path_factory.mktemp("warm") / "worker.log") as warm:
        yield warm


def test_the_executor_program_is_recognised() -> None:
    assert executor_program(program("ok", Path("/x"), Path("/t"))) is not None
    assert executor_program(["sh", "-c", "pip install x && python3 -m y", "src"]) is None
    assert executor_program(["python3", "-c", "pass"]) is None


def test_tasks_run_isolated_with_their_own_env(pool: WarmPool, tmp_path: Path) -> None:
    base = {**os.environ, "FEDPIPE_SECRETS_DIR": "/all", "FEDPIPE_S3_ACCESS_KEY__OTHER": "o"}
    (tmp_path / "lab-key").write_text("lab-secret")
    env = task_environment(
        base,
        {"FEDPIPE_S3_ACCESS_KEY__LAB": str(tmp_path / "lab-key")},
        {"FEDPIPE_S3_ACCESS_KEY__LAB", "FEDPIPE_S3_ACCESS_KEY__OTHER"},
    )
    states = []
    for i in range(2):
        out = tmp_path / f"state-{i}.json"
        outcome = pool.run(program("ok", out, tmp_path), env, str(tmp_path), tmp_path / f"{i}.log")
        assert outcome.ok, (tmp_path / f"{i}.log").read_text()
        states.append(json.loads(out.read_text()))
    assert [s["mark_before"] for s in states] == [[], []]  # no module state carried over
    assert states[0]["rand"] != states[1]["rand"] and states[0]["np"] != states[1]["np"]
    assert states[0]["secret"] == "lab-secret"
    assert states[0]["other"] is None and states[0]["secrets_dir"] is None
    assert states[0]["cwd"] == str(tmp_path)


def test_a_task_is_profiled_when_its_environment_asks(pool: WarmPool, tmp_path: Path) -> None:
    import pstats

    from pipelines.local_run.warm_worker import PROFILE_ENV, profile_path

    env = {**os.environ, PROFILE_ENV: str(tmp_path / "profiles")}
    log = tmp_path / "train-lab-r2.log"
    outcome = pool.run(program("ok", tmp_path / "out.json", tmp_path), env, str(tmp_path), log)
    assert outcome.ok, log.read_text()
    path = profile_path(str(tmp_path / "profiles"), str(log))
    assert path == str(tmp_path / "profiles" / "train-lab-r2.prof")
    functions = {name for (_, _, name) in pstats.Stats(path).stats}  # type: ignore[attr-defined]
    assert "train_lab_r2" in functions


@pytest.mark.parametrize(
    ("mode", "reason", "log_text"),
    [
        ("raise", "exited with code 1", "ValueError: boom from the task body"),
        ("exit", "exited with code 7", ""),
        ("sleep", "exceeded its timeout of 3 s and was killed", ""),
    ],
)
def test_a_failing_task_fails_alone_and_the_pool_recovers(
    pool: WarmPool, tmp_path: Path, mode: str, reason: str, log_text: str
) -> None:
    env = dict(os.environ)
    log = tmp_path / "task.log"
    worker = pool.worker_pid()
    outcome = pool.run(program(mode, tmp_path / "out.json", tmp_path), env, str(tmp_path), log, 3)
    assert not outcome.ok
    assert outcome.reason(3) == reason
    assert log_text in log.read_text()
    assert pool.worker_pid() == worker  # only the task's child ended
    after = pool.run(program("ok", tmp_path / "ok.json", tmp_path), env, str(tmp_path), log, 60)
    assert after.ok and (tmp_path / "ok.json").is_file()


def test_a_dead_worker_fails_its_tasks_and_is_restarted(pool: WarmPool, tmp_path: Path) -> None:
    import signal
    import threading

    env = dict(os.environ)
    result = {}

    def slow() -> None:
        result["outcome"] = pool.run(
            program("sleep", tmp_path / "x.json", tmp_path), env, str(tmp_path), tmp_path / "s.log"
        )

    thread = threading.Thread(target=slow)
    thread.start()
    old = pool.worker_pid()
    import time

    time.sleep(2)
    os.kill(old, signal.SIGKILL)
    thread.join(60)
    assert result["outcome"].worker_lost
    assert "warm worker died" in result["outcome"].reason(None)
    after = pool.run(
        program("ok", tmp_path / "ok.json", tmp_path), env, str(tmp_path), tmp_path / "o.log"
    )
    assert after.ok and pool.worker_pid() != old and pool.restarts == 1


def test_the_scheduler_names_task_site_and_round(pool: WarmPool, tmp_path: Path, capsys) -> None:
    from kfp import local

    from pipelines.local_run.parallel import run_pipeline_parallel
    from tests.support.toy_components import toy

    local.init(local.SubprocessRunner(use_venv=False), pipeline_root=str(tmp_path / "root"))
    spec = json.loads(json.dumps(_as_dict(toy.pipeline_spec)))
    infos = task_map(spec)
    assert infos["train-lab-r2"] == TaskInfo("train-lab-r2", "train", "lab", 2)
    logs = tmp_path / "logs"
    sent = pool.tasks_run
    ok = run_pipeline_parallel(
        toy.pipeline_spec, {"mode": "exit"}, str(tmp_path / "root"), logs, 2, infos, pool=pool
    )
    assert not ok
    assert pool.tasks_run == sent + 1  # KFP's own executor program ran warm, too
    text = (logs / "train-lab-r2.log").read_text()
    assert "fedpipe: task train-lab-r2 (train, site lab, round 2) exited with code 7" in text
    events = [json.loads(x.split(" ", 1)[1]) for x in capsys.readouterr().out.splitlines()]
    finish = [e for e in events if e["kind"] == "finish"]
    assert finish[0]["status"] == "FAILURE" and finish[0]["reason"] == "exited with code 7"
    assert run_pipeline_parallel(
        toy.pipeline_spec, {"mode": "fine"}, str(tmp_path / "root"), logs, 2, infos, pool=pool
    )


def _as_dict(proto) -> dict:
    from google.protobuf import json_format

    return json_format.MessageToDict(proto)


def test_threads_fit_the_cores() -> None:
    assert thread_environment(2, cores=2)["TF_NUM_INTRAOP_THREADS"] == "1"
    assert thread_environment(2, cores=2)["TF_NUM_INTEROP_THREADS"] == "1"
    assert thread_environment(1, cores=8)["TF_NUM_INTRAOP_THREADS"] == "8"
    assert thread_environment(16, cores=8)["TF_NUM_INTRAOP_THREADS"] == "1"
