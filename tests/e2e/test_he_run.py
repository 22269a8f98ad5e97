"""`aggregation.protection: he` end to end through kfp.local (warm mode): three sites, two
rounds. Each site encrypts its update under the federation's CKKS context, the coordinator
adds ciphertexts with the public context only, every site decrypts the global model it trains
from and evaluates. The decrypted global model equals plain FedAvg of the same site updates
(recomputed here from each update, decrypted one by one, which no pipeline task does) within
1e-6 relative, and nothing the coordinator holds or passes on contains the secret key."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from components.common.global_model import read_global_model
from components.he.ckks import decrypt_mean
from components.he.global_model import flatten, read_encrypted, unflatten
from components.he.keys import open_envelope
from components.he.wire import (
    COORDINATOR_CONTEXT_KEY,
    SITE_CONTEXT_KEY,
    unpack_bundle,
    unpack_context,
)
from tests.support.e2e import SITES, fedpipe
from tests.support.paths import REPO

pytestmark = [pytest.mark.e2e, pytest.mark.integration, pytest.mark.slow]
RUN_ID = "e2e-he"
ROUNDS = 2
COORDINATOR_BUCKET = "fedpipe-coordinator-global"


def _he_policies(policies: Path) -> None:
    for name in ("eu-health.yaml", "us-health.yaml"):
        path = policies / name
        text = path.read_text()
        assert "aggregation:\n" in text
        path.write_text(text.replace("aggregation:\n", "aggregation:\n  protection: he\n"))


def _secret_envelopes(root: Path) -> list[Path]:
    """Files under `root` that are a CKKS context holding the secret key."""
    found = []
    for path in root.rglob("*"):
        if not path.is_file():
            continue
        with path.open("rb") as handle:
            head = handle.read(4096)
        if (
            head.startswith(b"fedpipe-ckks-context/1\n")
            and unpack_context(path.read_bytes()).secret
        ):
            found.append(path)
    return found


def test_three_sites_two_rounds_under_he_match_plain_fedavg(tmp_path: Path) -> None:
    sites, policies = tmp_path / "sites", tmp_path / "policies"
    shutil.copytree(REPO / "sites", sites)
    shutil.copytree(REPO / "policies", policies)
    _he_policies(policies)
    runs = tmp_path / "runs"
    proc = fedpipe(
        "run", "--local", "--sites", str(sites), "--policies", str(policies),
        "--runs-dir", str(runs), "--run-id", RUN_ID, "--rounds", str(ROUNDS), "--no-baseline",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    assert "homomorphic encryption: CKKS context ckks-" in proc.stdout
    run_dir = runs / RUN_ID
    s3, gcs = runs / ".state" / "s3", runs / ".state" / "gcs" / COORDINATOR_BUCKET

    # the key material where the setup put it: secret copies at the sites, public at the
    # coordinator, nothing secret anywhere the coordinator writes or KFP carries
    site_keys = [s3 / f"{s}-fl" / SITE_CONTEXT_KEY for s in SITES]
    contexts = [open_envelope(p.read_bytes(), secret=True, where=str(p)) for p in site_keys]
    public = open_envelope(
        (gcs / COORDINATOR_CONTEXT_KEY).read_bytes(), secret=False, where="coordinator"
    )
    assert {c.context_id for c in contexts} == {public.context_id}
    assert not public.context.is_private()
    assert _secret_envelopes(gcs) == []
    assert _secret_envelopes(run_dir / "kfp") == []  # the pipeline root: every task output
    assert _secret_envelopes(run_dir / "logs") == []
    # the coordinator's tasks get only the coordinator's own key and, per site, the read-only
    # keys whose identity the site's store refuses he/ (tests/access/test_store_enforces.py)
    env_files = json.loads((run_dir / "compiled" / "task-secrets.json").read_text())
    coordinator_tasks = [k for k in env_files if k.startswith(("exec-aggregate", "exec-report"))]
    assert coordinator_tasks
    for label in coordinator_tasks:
        for var, file in env_files[label].items():
            owner = Path(file).relative_to(run_dir / "secrets").parts
            assert owner[0] == "coordinator" or owner[1] == "coordinator-read", (label, var)
            assert not Path(file).read_bytes().startswith(b"fedpipe-ckks-context/1\n")
    site_context = contexts[0]

    # the coordinator published ciphertexts only: no plain model in its bucket
    published = sorted(p.name for p in (gcs / "models" / RUN_ID).rglob("*") if p.is_file())
    assert "model.npz" not in published and published.count("model.ckks") == ROUNDS

    # recompute plain FedAvg from each site's own update (decrypted individually here)
    encrypted = [
        p for p in (run_dir / "kfp").rglob("meta.json") if (p.parent / "model.ckks").exists()
    ]
    final = max((read_encrypted(p.parent) for p in encrypted), key=lambda m: m.version)
    assert final.version == ROUNDS and final.meta["he"]["base_version"] == 0
    # one ciphertext per version, whatever the round: the artifact does not grow
    assert {tuple(sorted(q.name for q in p.parent.iterdir())) for p in encrypted} == {
        ("meta.json", "model.ckks")
    }
    initial = [
        read_global_model(p.parent)
        for p in (run_dir / "kfp").rglob("meta.json")
        if (p.parent / "model.npz").exists() and json.loads(p.read_text())["version"] == 0
    ]
    model = {n: np.asarray(t, np.float32) for n, t in initial[0].tensors.items()}
    shapes = [(n, model[n].shape) for n in sorted(model)]
    length = flatten(model).size
    summary = json.loads((run_dir / "summary.json").read_text())
    for r in range(1, ROUNDS + 1):
        contributors = summary["rounds"][r - 1]["contributors"]
        assert len(contributors) >= 2, summary["rounds"][r - 1]
        weighted, weights = np.zeros(length), 0.0
        for site in contributors:
            key = s3 / f"{site}-fl" / "updates" / RUN_ID / f"round-{r:04d}" / f"{site}.ckks"
            bundle = unpack_bundle(
                key.read_bytes(), context_id=public.context_id, length=length, where=str(key)
            )
            mean, weight = decrypt_mean(site_context.context, bundle)
            weighted += mean * weight
            weights += weight
        delta = unflatten(weighted / weights, shapes)
        model = {n: model[n] + delta[n] for n in model}
        decrypted = read_global_model(run_dir / "decrypted" / f"round-{r}")
        for n in model:
            rel = np.linalg.norm(decrypted.tensors[n] - model[n]) / np.linalg.norm(model[n])
            assert rel < 1e-6, (r, n, rel)
        # every site evaluated the version it decrypted itself
        for site in SITES:
            evaluation = summary["rounds"][r - 1]["sites"][site]
            assert evaluation["accuracy"] is not None, (r, site, evaluation)
    final_model = read_global_model(run_dir / "global_model")
    assert final_model.version == ROUNDS
    report = json.loads(next((run_dir / "kfp").rglob("round.json")).read_text())
    assert report["anomaly"]["off"].startswith("aggregation.protection he")
    assert "he: the coordinator added" in report["notes"]["protection"]
    assert summary["protection"].startswith("he: the coordinator added 3 CKKS ciphertexts")
    assert "encrypted global model v2 from 3 site(s)" in proc.stdout
