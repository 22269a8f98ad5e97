"""`aggregation.protection: secagg` end to end (kfp.local, warm workers): the example
federation with every policy asking secure aggregation trains two rounds through the SecAgg+
stages, and its published global model is the model the same run with protection none
publishes (same seed, DP off so that training is deterministic), up to fixed-point
quantization; the coordinator's bucket and the run's artifacts hold masked words, never a
clear update; the audit chains hold the masked exports and the coordinator's verifications
and verify; the report says that robust rules are off and why."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from components.common.tensors import load_tensors
from tests.support.e2e import SITES, fedpipe
from tests.support.paths import REPO

pytestmark = [pytest.mark.e2e, pytest.mark.integration, pytest.mark.slow]
ROUNDS = "2"
RUN_ID = "e2e-secagg"  # both runs: train's batch order derives from seed, site, run and round


def _run(tmp: Path, name: str, protection: str) -> Path:
    sites, policies = tmp / name / "sites", tmp / name / "policies"
    shutil.copytree(REPO / "sites", sites)
    shutil.copytree(REPO / "policies", policies)
    if protection != "none":
        for path in policies.glob("*.yaml"):
            text = path.read_text()
            assert "aggregation:\n" in text
            path.write_text(
                text.replace("aggregation:\n", f"aggregation:\n  protection: {protection}\n")
            )
    runs = tmp / name / "runs"
    proc = fedpipe(
        "run", "--local", "--sites", str(sites), "--policies", str(policies),
        "--runs-dir", str(runs), "--run-id", RUN_ID, "--rounds", ROUNDS,
        "--no-dp", "--no-baseline", "--seed", "0",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    (tmp / name / "stdout.txt").write_text(proc.stdout)
    return runs


def test_a_secagg_run_publishes_the_plain_runs_model_up_to_quantization(tmp_path: Path) -> None:
    secure = _run(tmp_path, "secagg", "secagg")
    out = (tmp_path / "secagg" / "stdout.txt").read_text()
    for site in SITES:
        assert any(
            "export" in line and site in line and "masked update (SecAgg+)" in line
            for line in out.splitlines()
        ), out
    assert "answered: self-mask shares of 3 site(s)" in out
    assert "k = 2, t = 2" in out
    plain = _run(tmp_path, "plain", "none")
    a = load_tensors((secure / RUN_ID / "global_model" / "model.npz").read_bytes())
    b = load_tensors((plain / RUN_ID / "global_model" / "model.npz").read_bytes())
    assert sorted(a) == sorted(b)
    for name in a:
        # 52-bit fixed point over [-100, 100] (4e-14 a step) and float32 tensors: the two
        # models differ by float32 rounding at most
        np.testing.assert_allclose(a[name], b[name], rtol=1e-5, atol=1e-6)

    # the sites' chains hold their masked exports, the coordinator's one verification per site
    # resting on them and the site's admission; every chain and cross-reference verifies
    audit = fedpipe("audit", "verify", RUN_ID, "--local", "--runs-dir", str(secure))
    assert audit.returncode == 0, audit.stdout[-3000:] + audit.stderr[-3000:]
    assert "masked update summed" in audit.stdout, audit.stdout[-3000:]
    assert "verified: every chain, checkpoint and cross-reference" in audit.stdout

    summary = json.loads((secure / RUN_ID / "summary.json").read_text())
    assert "robust rules" in summary["protection"] and "only the sum" in summary["protection"]
    assert "robust rules" in (secure / RUN_ID / "report.md").read_text()
    # no clear update anywhere: the sites' buckets hold masked words, the coordinator's
    # bucket the protocol's public messages only
    state = secure / ".state"
    for site in SITES:
        bucket = state / "s3" / f"{site}-fl"
        assert not (bucket / "updates").exists()
        for r in (1, 2):
            assert (bucket / "secagg" / RUN_ID / f"round-{r:04d}" / site / "masked.bin").exists()
    coordinator = [p.relative_to(state / "gcs") for p in (state / "gcs").rglob("*") if p.is_file()]
    assert coordinator and not any("state-" in str(p) or "private" in str(p) for p in coordinator)


def test_a_site_that_abstains_at_validate_is_in_no_roster_and_the_others_aggregate(
    tmp_path: Path,
) -> None:
    import yaml

    sites, policies = tmp_path / "sites", tmp_path / "policies"
    shutil.copytree(REPO / "sites", sites)
    shutil.copytree(REPO / "policies", policies)
    for path in policies.glob("*.yaml"):
        doc = yaml.safe_load(path.read_text())
        doc["aggregation"]["protection"] = "secagg"
        if doc["id"] == "us-health":  # two rounds at noise 1.5 compose past 3.0: Boston abstains
            doc["dp"].update(epsilon_per_round=3.0, lifetime_epsilon=3.0)
        path.write_text(yaml.safe_dump(doc))
    runs = tmp_path / "runs"
    proc = fedpipe(
        "run", "--local", "--sites", str(sites), "--policies", str(policies),
        "--runs-dir", str(runs), "--run-id", "e2e-secagg-absent", "--rounds", "2",
        "--no-baseline", "--param", "noise_multiplier=1.5",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    lines = proc.stdout.splitlines()
    # the roster holds the two sites that advertised: complete graph k = 1, t = 2
    assert any("roster" in line and "2 site(s), k = 1, t = 2" in line for line in lines), lines
    assert any(
        "shares" in line and "clinic-boston" in line and "ABSTAINED" in line for line in lines
    )
    summary = json.loads((runs / "e2e-secagg-absent" / "summary.json").read_text())
    for rnd in summary["rounds"]:
        assert rnd["contributors"] == ["hospital-berlin", "hospital-paris"]
        assert "privacy budget" in rnd["abstained"]["clinic-boston"]
    assert "robust rules" in summary["protection"]


def _secagg_settings_of(compiled: Path):  # type: ignore[no-untyped-def]
    """The `secagg_json` constant of the run's compiled pipeline."""
    import yaml

    from components.secagg.settings import SecAggSettings

    found: set[str] = set()

    def walk(node: object) -> None:
        if isinstance(node, dict):
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)
        elif isinstance(node, str) and node.startswith("{") and '"modulus_bits"' in node:
            found.add(node)

    for path in compiled.glob("*.yaml"):
        for doc in yaml.safe_load_all(path.read_text()):
            walk(doc)
    assert len(found) == 1, found
    return SecAggSettings.from_json(found.pop())


def _hooked_secagg_run(tmp_path: Path, run_id: str, hook_env: dict[str, str]):  # type: ignore[no-untyped-def]
    """One round of the example federation under secagg, DP off, every task its own process
    (kfp.local's way) with the test-only `sitecustomize` of `tests/support/secagg_drop/`
    first on its PYTHONPATH, driven by `hook_env`; (result, emitted lines)."""
    import os

    import yaml

    from pipelines.local_run.options import RunOptions
    from pipelines.local_run.runner import run_local

    sites, policies = tmp_path / "sites", tmp_path / "policies"
    shutil.copytree(REPO / "sites", sites)
    shutil.copytree(REPO / "policies", policies)
    for path in policies.glob("*.yaml"):
        doc = yaml.safe_load(path.read_text())
        doc["aggregation"]["protection"] = "secagg"
        path.write_text(yaml.safe_dump(doc))
    hook = REPO / "tests" / "support" / "secagg_drop"
    pythonpath = os.pathsep.join(
        p for p in (str(hook), str(REPO), os.environ.get("PYTHONPATH")) if p
    )
    lines: list[str] = []
    result = run_local(
        RunOptions(
            rounds=1, run_id=run_id, runs_dir=tmp_path / "runs", sites_dir=sites,
            policies_dir=policies, dp=False, baseline=False, seed=0, isolation="process",
            task_env={"PYTHONPATH": pythonpath, **hook_env},
        ),
        emit=lines.append,
    )  # fmt: skip
    return result, lines


def _assert_the_plain_fedavg_of(result, tmp_path: Path, summed: list[str]) -> dict:  # type: ignore[no-untyped-def]
    """The published round-1 model is the initial one plus the plain FedAvg of `summed`'s
    quantized updates (from their local models in the saved bucket state); round.json."""
    from components.common.global_model import read_global_model
    from components.export.update import model_delta
    from components.secagg.encode import decode_mean, encode_weighted
    from components.secagg.settings import flatten

    kfp_dir = next((result.run_dir / "kfp").iterdir())
    settings = _secagg_settings_of(result.run_dir / "compiled")
    quantizer = settings.quantizer()
    previous = read_global_model(str(kfp_dir / "initialize" / "global_model"))
    state = tmp_path / "runs" / ".state" / "s3"
    total = None
    for site in summed:
        ref = json.loads((kfp_dir / f"train-{site}-r1" / "local_model" / "ref.json").read_text())
        folder = state / ref["bucket"] / ref["prefix"]
        meta = json.loads((folder / "meta.json").read_text())
        local = load_tensors((folder / "model.npz").read_bytes())
        vector = flatten(model_delta(local, previous.tensors, site))
        words = encode_weighted(
            vector, settings.weight(meta.get("num_examples"), site), settings.norm_bound, quantizer
        )
        total = words if total is None else total + words  # uint words wrap mod 2^w
    mean, _ = decode_mean(total, len(summed), quantizer)
    expected = flatten(previous.tensors) + mean
    published = load_tensors((kfp_dir / "aggregate-r1" / "global_model" / "model.npz").read_bytes())
    assert sorted(published) == sorted(previous.tensors)
    np.testing.assert_allclose(flatten(published), expected, rtol=1e-6, atol=1e-7)
    return json.loads((kfp_dir / "aggregate-r1" / "round_report" / "round.json").read_text())


def test_a_site_dropping_after_masking_leaves_the_sum_of_the_survivors(tmp_path: Path) -> None:
    """hospital-paris masks its round-1 update (shares relayed, manifest signed, export record
    written), then its masked object is lost before the coordinator's request (the hook
    removes it): the request lists it as dropped, the two survivors reveal its masking key's
    shares (t = 2 of k = 2 hold), and the published model is the previous one plus the plain
    FedAvg of the survivors' quantized updates."""
    lost = "hospital-paris"
    survivors = [s for s in SITES if s != lost]
    result, lines = _hooked_secagg_run(
        tmp_path, "e2e-secagg-lost", {"FEDPIPE_TEST_LOSE_MASKED": f"{lost}:1"}
    )
    out = "\n".join(lines)
    # the lost site masked and exported; the request names it dropped; the others answered
    assert any(
        "export" in ln and lost in ln and "masked update (SecAgg+)" in ln for ln in lines
    ), out
    [rnd] = result.summary["rounds"]
    assert rnd["contributors"] == survivors, rnd
    report = _assert_the_plain_fedavg_of(result, tmp_path, survivors)
    notes = report["notes"]["secagg"]
    assert lost in notes["dropped"] and sorted(notes["summed"]) == survivors, notes


def test_a_site_whose_store_fails_while_sharing_is_excluded_at_relay(tmp_path: Path) -> None:
    """hospital-paris's object store fails while it seals its shares (the hook makes the
    site's `exchange.site_share` raise a connection error): its shares task abstains naming
    the error, the relay excludes it from the round (signed), its export abstains, and the
    two others (each keeping t = 2 live share holders, the quorum 2 holds) publish the plain
    FedAvg of their quantized updates."""
    silent = "hospital-paris"
    others = [s for s in SITES if s != silent]
    result, lines = _hooked_secagg_run(
        tmp_path, "e2e-secagg-silent", {"FEDPIPE_TEST_SHARES_FAIL": silent}
    )
    out = "\n".join(lines)
    assert any("shares" in ln and silent in ln and "ABSTAINED" in ln for ln in lines), out
    [rnd] = result.summary["rounds"]
    assert rnd["contributors"] == others, rnd
    assert "excluded from round 1 at relay" in rnd["abstained"][silent], rnd
    report = _assert_the_plain_fedavg_of(result, tmp_path, others)
    notes = report["notes"]["secagg"]
    assert notes["excluded"] == [silent] and notes["dropped"] == [], notes
