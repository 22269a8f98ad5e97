"""Two scheduled runs in a row (issue 6), simulated with `fedpipe run --local`.

A scheduled KFP run is the compiled pipeline with `resume=true` and its own run id (the KFP
job id). Here: two consecutive local runs of the example federation into the same runs folder
(the buckets, hence the coordinator's models and the sites' ledgers, persist in
`<runs>/.state/`), both with `--param resume=true` and distinct run ids. The second run starts
from the first run's last global model, and the ledgers hold both runs' epsilon. A third run
under policies whose lifetime epsilon is already spent stops in validate (the run's privacy
pre-flight) before any site trains, naming the site and its budget.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from components.common.tensors import load_tensors
from components.privacy.accounting import epsilons
from tests.support.e2e import SITES, fedpipe, ledger_entries
from tests.support.paths import REPO

FIRST, SECOND, OVER_BUDGET = "e2e-sched-1", "e2e-sched-2", "e2e-sched-over"
FIRST_ROUNDS = 2
COORDINATOR_BUCKET = yaml.safe_load((REPO / "sites" / "coordinator.yaml").read_text())[
    "object_store"
]["bucket"]

pytestmark = [pytest.mark.e2e, pytest.mark.integration, pytest.mark.slow]


def scheduled_run(runs: Path, run_id: str, rounds: int, *extra: str):
    return fedpipe(
        "run",
        "--local",
        "--rounds",
        str(rounds),
        "--runs-dir",
        str(runs),
        "--run-id",
        run_id,
        "--no-baseline",
        "--param",
        "resume=true",
        *extra,
    )


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    runs = tmp_path_factory.mktemp("scheduled")
    for run_id, rounds in ((FIRST, FIRST_ROUNDS), (SECOND, 1)):
        proc = scheduled_run(runs, run_id, rounds)
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return runs


def _summary(runs: Path, run_id: str) -> dict:
    return json.loads((runs / run_id / "summary.json").read_text())


def _published_meta(runs: Path, run_id: str, version: int) -> dict:
    folder = runs / ".state" / "gcs" / COORDINATOR_BUCKET / "models" / run_id / f"v{version}"
    return json.loads((folder / "meta.json").read_text())


def _initialize_output(runs: Path, run_id: str) -> Path:
    found = sorted((runs / run_id / "kfp").rglob("initialize/global_model/meta.json"))
    assert len(found) == 1, found
    return found[0].parent


def test_second_run_starts_from_the_first_runs_last_global_model(two_runs: Path) -> None:
    runs = two_runs
    assert _summary(runs, FIRST)["settings"]["pipeline_parameters"]["resume"] is True
    assert _summary(runs, SECOND)["settings"]["pipeline_parameters"]["resume"] is True
    last = _published_meta(runs, FIRST, FIRST_ROUNDS)
    assert last["version"] == FIRST_ROUNDS and last["run_id"] == FIRST
    first_uri = f"gs://{COORDINATOR_BUCKET}/models/{FIRST}/v{FIRST_ROUNDS}"

    start = _initialize_output(runs, SECOND)
    start_meta = json.loads((start / "meta.json").read_text())
    assert start_meta["version"] == FIRST_ROUNDS and start_meta["run_id"] == SECOND
    assert start_meta["published"].rstrip("/") == first_uri
    assert start_meta["source"].rstrip("/") == f"resumed from {first_uri}"
    first_final = load_tensors((runs / FIRST / "global_model" / "model.npz").read_bytes())
    started_from = load_tensors((start / "model.npz").read_bytes())
    assert sorted(started_from) == sorted(first_final)
    for name, tensor in first_final.items():
        assert (started_from[name] == tensor).all(), name

    second = _published_meta(runs, SECOND, FIRST_ROUNDS + 1)
    print(
        f"run {SECOND} v{second['version']}: parent {second['parent']}, "
        f"parent_uri {second['parent_uri']}"
    )
    assert second["parent"] == f"v{FIRST_ROUNDS}" and second["parent_version"] == FIRST_ROUNDS
    assert second["parent_uri"].rstrip("/") == first_uri
    assert second["run_id"] == SECOND
    final = json.loads((runs / SECOND / "global_model" / "meta.json").read_text())
    assert final["version"] == FIRST_ROUNDS + 1 and final["parent_uri"] == second["parent_uri"]


def test_ledgers_hold_both_runs_epsilon(two_runs: Path) -> None:
    runs = two_runs
    first, second = _summary(runs, FIRST), _summary(runs, SECOND)
    for site in SITES:
        entries = [e for e in ledger_entries(runs, site) if e.run_id in (FIRST, SECOND)]
        rounds = sorted((e.run_id, e.round) for e in entries)
        assert rounds == [(FIRST, 1), (FIRST, 2), (SECOND, 1)], (site, rounds)
        delta = entries[0].delta
        both = epsilons([e.event for e in entries], delta).rdp
        only_first = epsilons([e.event for e in entries if e.run_id == FIRST], delta).rdp
        only_second = epsilons([e.event for e in entries if e.run_id == SECOND], delta).rdp
        life_1 = first["ledgers"][site]["lifetime_epsilon"]
        life_2 = second["ledgers"][site]["lifetime_epsilon"]
        print(
            f"{site}: run 1 ε {only_first:.4f}, run 2 ε {only_second:.4f}, "
            f"ledger after run 1 {life_1:.4f}, after run 2 {life_2:.4f} (RDP)"
        )
        assert life_1 == pytest.approx(only_first, rel=1e-9)
        assert life_2 == pytest.approx(both, rel=1e-9)
        assert second["ledgers"][site]["lifetime_entries"] == 3
        assert second["epsilon_total"][site]["rdp"] == pytest.approx(only_second, rel=1e-9)
        assert life_2 > life_1 > 0 and only_second > 0


def test_a_run_beyond_the_lifetime_budget_stops_before_training(
    two_runs: Path, tmp_path: Path
) -> None:
    runs = two_runs
    spent = {site: _summary(runs, SECOND)["ledgers"][site]["lifetime_epsilon"] for site in SITES}
    policies = tmp_path / "policies"
    policies.mkdir()
    limits = set()
    for path in sorted((REPO / "policies").glob("*.yaml")):
        doc = yaml.safe_load(path.read_text())
        if doc["id"] != "coordinator":  # the sites' policies: lifetime = one round's limit
            doc["dp"]["lifetime_epsilon"] = doc["dp"]["epsilon_per_round"]
            limits.add(f"dp.lifetime_epsilon {doc['dp']['lifetime_epsilon']:g}")
        (policies / path.name).write_text(yaml.safe_dump(doc, sort_keys=False))
    print(f"ledgers before the over-budget run (RDP): {spent}; policies now {sorted(limits)}")
    before = {site: len(ledger_entries(runs, site)) for site in SITES}

    proc = scheduled_run(
        runs, OVER_BUDGET, 1, "--sites", str(REPO / "sites"), "--policies", str(policies)
    )
    assert proc.returncode == 1, proc.stdout[-3000:] + proc.stderr[-3000:]
    # every site abstains in validate (its lifetime budget cannot cover the run); initialize then
    # stops the run because the quorum cannot hold, naming each site and its budget reason
    assert "task initialize (initialize, site coordinator) failed" in proc.stderr, proc.stderr[
        -3000:
    ]
    assert "quorum cannot hold: 0 site(s) can take part" in proc.stderr, proc.stderr[-3000:]
    for site in SITES:
        assert f"{site} (site {site} abstains: privacy budget: this run's 1 remaining round(s)" in (
            proc.stderr
        ), proc.stderr[-3000:]
    assert any(limit in proc.stderr for limit in limits), proc.stderr[-3000:]
    assert not [x for x in proc.stdout.splitlines() if " train " in x], proc.stdout[-3000:]
    # nothing trained, nothing charged, nothing published
    assert {site: len(ledger_entries(runs, site)) for site in SITES} == before
    models = runs / ".state" / "gcs" / COORDINATOR_BUCKET / "models"
    assert not (models / OVER_BUDGET).exists()
    assert not (runs / OVER_BUDGET / "summary.json").exists()
