"""`fedpipe run --local` end to end: real servers, real data, the compiled pipeline in kfp.local.

One 2-round run on breast cancer (about 2 minutes on 2 cores) is shared by the assertions;
the failure test stops after round 1's aggregate.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml

from components.privacy.accounting import epsilons
from tests.support.e2e import SITES, fedpipe, ledger_entries
from tests.support.paths import REPO

RUN_ID = "e2e-two-rounds"

pytestmark = [pytest.mark.e2e, pytest.mark.integration]


@pytest.fixture(scope="module")
def two_round_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    runs = tmp_path_factory.mktemp("runs")
    proc = fedpipe("run", "--local", "--rounds", "2", "--runs-dir", str(runs), "--run-id", RUN_ID)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return runs, proc.stdout


def test_summary_has_every_round_and_a_model_that_learned(two_round_run) -> None:
    runs, stdout = two_round_run
    summary = json.loads((runs / RUN_ID / "summary.json").read_text())
    assert summary["run_id"] == RUN_ID and summary["dataset"] == "breast_cancer"
    assert [r["round"] for r in summary["rounds"]] == [1, 2]
    for rnd in summary["rounds"]:
        assert rnd["contributors"] == SITES
        assert rnd["abstained"] == {} and rnd["rejected"] == {}
        for site in SITES:
            assert rnd["sites"][site]["accuracy"] is not None
            assert rnd["sites"][site]["epsilon"] > 0
        assert rnd["global"]["test_accuracy"] is not None
    # the majority class of the pooled test set is ~63%: a model that learned nothing fails
    assert summary["final"]["test_accuracy"] >= 0.80
    assert summary["final"]["accuracy"] >= 0.80
    assert summary["baseline"]["test_accuracy"] >= 0.90
    assert "round 2/2" in stdout and "federated test accuracy" in stdout


def test_epsilon_in_summary_equals_the_site_ledgers(two_round_run) -> None:
    runs, _ = two_round_run
    summary = json.loads((runs / RUN_ID / "summary.json").read_text())
    for site in SITES:
        entries = [e for e in ledger_entries(runs, site) if e.run_id == RUN_ID]
        assert sorted((e.round, e.attempt) for e in entries) == [(1, 1), (2, 1)]
        eps = epsilons([e.event for e in entries], entries[0].delta)
        total = summary["epsilon_total"][site]
        assert total["source"] == "site ledger"
        assert total["rdp"] == pytest.approx(eps.rdp, rel=1e-9)
        assert total["pld"] == pytest.approx(eps.pld, rel=1e-6)
        assert summary["rounds"][1]["sites"][site]["epsilon_cumulative"] == pytest.approx(eps.rdp)
        assert 0 < eps.rdp <= 8.0


def test_outputs_exist_and_rerun_is_refused(two_round_run) -> None:
    runs, _ = two_round_run
    run_dir = runs / RUN_ID
    assert (runs / "latest").resolve() == run_dir.resolve()
    page = (run_dir / "report.html").read_text()
    # three round plots and the membership audit's advantage-vs-round plot
    assert page.count("data:image/png;base64,") == 4
    assert "<img alt='membership advantage per round'" in page
    assert "centralized baseline" in page
    assert (run_dir / "report.md").is_file()
    assert (run_dir / "global_model" / "model.npz").stat().st_size > 0
    meta = json.loads((run_dir / "global_model" / "meta.json").read_text())
    assert meta["version"] == 2
    residency = json.loads((run_dir / "residency-report.json").read_text())
    assert residency  # the compiler's decisions ship with the run
    key = run_dir / "secrets" / "hospital-berlin" / "signing_key"
    assert oct(key.stat().st_mode & 0o777) == "0o600"
    again = fedpipe("run", "--local", "--rounds", "2", "--runs-dir", str(runs), "--run-id", RUN_ID)
    assert again.returncode == 2 and "already finished" in again.stderr
    assert len(ledger_entries(runs, "hospital-berlin")) == 2  # nothing charged by the refused rerun


def test_a_failing_task_stops_the_run_naming_task_and_site(tmp_path: Path) -> None:
    # every site abstains (batch larger than its data), so aggregation misses its quorum
    proc = fedpipe(
        "run",
        "--local",
        "--rounds",
        "1",
        "--runs-dir",
        str(tmp_path),
        "--run-id",
        "e2e-fail",
        "--no-baseline",
        "--param",
        "batch_size=100000",
    )
    assert proc.returncode == 1, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "task aggregate-r1 (aggregate, site coordinator, round 1) failed" in proc.stderr
    assert "quorum" in proc.stderr.lower()
    assert "ABSTAINED" in proc.stdout
    assert not (tmp_path / "e2e-fail" / "summary.json").exists()


def test_trained_models_stay_in_the_site_buckets(two_round_run) -> None:
    runs, _ = two_round_run
    kfp_root = runs / RUN_ID / "kfp"  # the pipeline root: on a cluster, outside every site
    folders = [p for p in kfp_root.rglob("local_model") if p.parent.name.startswith("train-")]
    assert len(folders) == len(SITES) * 2
    for folder in folders:
        assert [p.name for p in folder.iterdir()] == ["ref.json"], folder
    assert not list(kfp_root.rglob("train-*/**/model.npz"))
    for site in SITES:
        stashed = runs / ".state" / "s3" / f"{site}-fl" / "local-models" / RUN_ID
        assert len(list(stashed.rglob("model.npz"))) == 2, site  # one per round


def test_console_privacy_lines_are_the_ledgers(two_round_run) -> None:
    runs, stdout = two_round_run
    trains = [line for line in stdout.splitlines() if "   train   " in line]
    assert len(trains) == 2 * len(SITES)
    assert all("ε this round " in line and ", ledger total " in line for line in trains)
    (last,) = [line for line in stdout.splitlines() if "ε this run up to round 2" in line]
    summary = json.loads((runs / RUN_ID / "summary.json").read_text())
    listed = ", ".join(f"{s} {summary['ledgers'][s]['epsilon']:.3f}" for s in SITES)
    assert last.strip() == f"ε this run up to round 2 (ledgers, RDP): {listed}"


def test_a_site_that_cannot_afford_the_run_abstains_and_the_run_goes_on(tmp_path: Path) -> None:
    policies = tmp_path / "policies"
    shutil.copytree(REPO / "policies", policies)
    us = yaml.safe_load((policies / "us-health.yaml").read_text())
    # a round at noise 1.5 spends ε 2.198 (within 3.0 per round), two compose to 3.034 > 3.0
    us["dp"].update(epsilon_per_round=3.0, lifetime_epsilon=3.0)
    (policies / "us-health.yaml").write_text(yaml.safe_dump(us))
    runs = tmp_path / "runs"
    proc = fedpipe(
        "run",
        "--local",
        "--policies",
        str(policies),
        "--runs-dir",
        str(runs),
        "--run-id",
        "e2e-exhausted",
        "--rounds",
        "2",
        "--no-baseline",
        "--param",
        "noise_multiplier=1.5",
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    boston = [line for line in proc.stdout.splitlines() if "clinic-boston" in line]
    assert any("validate" in line and "privacy budget" in line for line in boston), boston
    summary = json.loads((runs / "e2e-exhausted" / "summary.json").read_text())
    assert [r["round"] for r in summary["rounds"]] == [1, 2]
    for rnd in summary["rounds"]:
        assert rnd["contributors"] == ["hospital-berlin", "hospital-paris"]
        assert "privacy budget" in rnd["abstained"]["clinic-boston"]
    assert [e for e in ledger_entries(runs, "clinic-boston") if e.run_id == "e2e-exhausted"] == []


def test_a_run_whose_quorum_cannot_hold_stops_before_anyone_trains(tmp_path: Path) -> None:
    policies = tmp_path / "policies"
    shutil.copytree(REPO / "policies", policies)
    eu = yaml.safe_load((policies / "eu-health.yaml").read_text())
    eu["dp"].update(epsilon_per_round=3.0, lifetime_epsilon=3.0)  # Berlin and Paris: 2 rounds
    (policies / "eu-health.yaml").write_text(yaml.safe_dump(eu))  # need 3.034, so they abstain
    runs = tmp_path / "runs"
    proc = fedpipe(
        "run",
        "--local",
        "--policies",
        str(policies),
        "--runs-dir",
        str(runs),
        "--run-id",
        "e2e-no-quorum",
        "--rounds",
        "2",
        "--no-baseline",
        "--param",
        "noise_multiplier=1.5",
    )
    assert proc.returncode == 1, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "task initialize (initialize, site coordinator) failed" in proc.stderr
    assert "quorum cannot hold: 1 site(s) can take part [clinic-boston]" in proc.stderr
    assert "   train   " not in proc.stdout  # nobody trained ...
    for site in SITES:  # ... and nothing was charged
        assert [e for e in ledger_entries(runs, site) if e.run_id == "e2e-no-quorum"] == []


def test_audit_chains_verify_and_the_coordinator_references_the_site_records(
    two_round_run,
) -> None:
    """Every stage appended its events: `fedpipe audit verify RUN --local` passes, and each
    round's aggregate record references the admission and export records of every site."""
    from components.audit.verify import COORDINATOR
    from pipelines.commands.audit import read_local_chains
    from pipelines.config.loader import load_federation

    runs, _ = two_round_run
    proc = fedpipe("audit", "verify", RUN_ID, "--local", "--runs-dir", str(runs))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert proc.stdout.rstrip().endswith("verified: every chain, checkpoint and cross-reference")
    config = runs / RUN_ID / "config"
    fed = load_federation(config / "sites", config / "policies")
    chains = read_local_chains(fed, RUN_ID, fed.coordinator.signing.public_key, runs / ".state")
    for site in SITES:
        kinds = [r.kind for r in chains[f"site/{site}"].records]
        assert kinds[:2] == ["admission", "validation"], kinds
        assert sorted(kinds[2:]) == sorted(["charge", "export", "evaluation"] * 2), kinds
        assert chains[f"site/{site}"].checkpoints, site  # one per evaluated round
    coord = chains[COORDINATOR].records
    per_round = ["verification"] * len(SITES) + ["aggregate", "publish"]
    assert [r.kind for r in coord] == ["initialize", *per_round * 2, "report"]
    start, report = coord[0], coord[-1]
    assert start.body["decision"] == "accept" and start.body["taking_part"] == sorted(SITES)
    assert start.body["version"] == 0 and len(start.body["model_sha256"]) == 64
    assert report.body["final_version"] == 2 and set(report.body["sha256"]) == {
        "html",
        "markdown",
        "summary.json",
    }
    for rnd in (1, 2):
        (aggregate,) = [r for r in coord if r.kind == "aggregate" and r.body["round"] == rnd]
        for site in SITES:
            records = chains[f"site/{site}"].records
            (export,) = [r for r in records if r.kind == "export" and r.body["round"] == rnd]
            (admission,) = [r for r in records if r.kind == "admission"]
            assert {export.hash, admission.hash} <= set(aggregate.refs), (rnd, site)
    for site in SITES:  # initialize references the records behind each validation summary
        admission, validation = chains[f"site/{site}"].records[:2]
        assert {admission.hash, validation.hash} <= set(start.refs), site
        assert start.body["site_records"][site] == {
            "admission": admission.hash,
            "validation": validation.hash,
        }
    assert "report files: checked against the report record in" in proc.stdout

    # a report changed after the report task wrote it is named
    (html,) = (runs / RUN_ID / "kfp").glob("*/report/html")
    original = html.read_bytes()
    html.write_bytes(original + b"<!-- edited -->")
    try:
        edited = fedpipe("audit", "verify", RUN_ID, "--local", "--runs-dir", str(runs))
    finally:
        html.write_bytes(original)
    assert edited.returncode == 1
    assert f"PROBLEM report file html in {html.parent} was changed after" in edited.stdout


def test_a_site_refuses_a_pipeline_compiled_from_a_weakened_policy(tmp_path: Path) -> None:
    """The pipeline is compiled from a us-health weakened (ε per round 3 → 6, dp_update also to
    a coordinator anywhere) while Boston keeps the original in its bucket (`--own-policies`):
    Boston's validate refuses naming both differences and abstains, Berlin and Paris go on
    (quorum 2), and the audit chains, Boston's refusal and abstention included, verify."""
    from components.audit.verify import COORDINATOR
    from pipelines.commands.audit import read_local_chains
    from pipelines.config.loader import load_federation

    policies = tmp_path / "policies"
    shutil.copytree(REPO / "policies", policies)
    us = yaml.safe_load((policies / "us-health.yaml").read_text())
    us["dp"]["epsilon_per_round"] = 6.0
    us["rules"]["dp_update"].append({"roles": ["coordinator"]})
    (policies / "us-health.yaml").write_text(yaml.safe_dump(us))
    runs = tmp_path / "runs"
    args = ["--policies", str(policies), "--own-policies", str(REPO / "policies")]
    proc = fedpipe(
        "run", "--local", "--rounds", "1", *args, "--runs-dir", str(runs),
        "--run-id", "e2e-weakened", "--no-baseline",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    summary = json.loads((runs / "e2e-weakened" / "summary.json").read_text())
    (rnd,) = summary["rounds"]
    assert rnd["contributors"] == ["hospital-berlin", "hospital-paris"]
    reason = rnd["abstained"]["clinic-boston"]
    assert "clinic-boston refused the run: dp.epsilon_per_round: the pipeline allows 6, the " \
        "site's own policy 3; rules.dp_update[2]: destination `roles=coordinator` is not " \
        "allowed by the site's own policy" in reason  # fmt: skip
    audit = fedpipe("audit", "verify", "e2e-weakened", "--local", "--runs-dir", str(runs))
    assert audit.returncode == 0, audit.stdout[-3000:] + audit.stderr[-3000:]
    config = runs / "e2e-weakened" / "config"
    fed = load_federation(config / "sites", config / "policies")
    chains = read_local_chains(
        fed, "e2e-weakened", fed.coordinator.signing.public_key, runs / ".state"
    )
    boston = chains["site/clinic-boston"].records
    assert [r.kind for r in boston] == ["admission", "validation", "abstain", "evaluation"]
    assert boston[0].body["decision"] == "refuse" and len(boston[0].body["reasons"]) == 2
    outcomes = {
        r.body["site"]: r.body["outcome"]
        for r in chains[COORDINATOR].records
        if r.kind == "verification"
    }
    assert outcomes == {
        "clinic-boston": "abstained",
        "hospital-berlin": "accepted",
        "hospital-paris": "accepted",
    }
