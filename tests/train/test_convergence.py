"""Must-show: DP-SGD on breast cancer split over the three example sites converges with FedAvg.

5 rounds; every round each site trains through the real train executor (ledger in its own
bucket, budget checks, seeded noise for reproducibility) from the current global model, and
the global model becomes the plain average of the three local models (FedAvg, equal weights:
the policies hide sample counts). Accuracy is on the pooled test set no site holds, scored
through each site's own scaler (as each site's evaluate would).
"""

from __future__ import annotations

import numpy as np
import pytest

from components.common.site_task import call_with_task
from components.common.tensors import load_tensors
from components.datasets.features import fit_scaler, frame_to_arrays
from components.evaluate.forward import predict_proba
from components.privacy.accounting import dp_sgd_event, rdp_epsilon
from components.privacy.ledger_store import LedgerStore
from components.train.executor import run as _train_executor
from components.train.models import initial_weights
from pipelines.config.loader import contract_by_name
from tests.support.site_env import SITE_IDS, federation_split, make_site_env
from tests.support.site_inputs import train_settings


def train(**inputs):  # as the component calls it
    return call_with_task(_train_executor, inputs)


pytestmark = [pytest.mark.slow, pytest.mark.integration]

ROUNDS = 5
HYPER = train_settings(noise_multiplier=1.2, seed=7)


def test_dp_fedavg_breast_cancer_three_sites_reaches_90_percent(minio, tmp_path, monkeypatch):
    fed = federation_split(seed=0)
    contract = contract_by_name("breast_cancer")
    envs = {s: make_site_env(minio, tmp_path, monkeypatch, site_id=s) for s in SITE_IDS}
    run_id = "conv-run"
    tensors = initial_weights("logreg", contract.num_features, contract.num_classes, seed=0)
    for r in range(1, ROUNDS + 1):
        locals_ = []
        for i, (site_id, env) in enumerate(envs.items()):
            global_model = env.write_global(tensors, r - 1, f"global-v{r - 1}")
            out = tmp_path / f"{site_id}-r{r}"
            meta = train(
                **env.common(run_id, r),
                **HYPER,
                validation=env.write_validation(),
                global_model=global_model,
                local_model=str(out),
                client_factory=env.factory(),
                noise_seed=1000 * r + i,
            )
            assert meta["status"] == "trained", meta["reason"]
            locals_.append(load_tensors((out / "model.npz").read_bytes()))
        tensors = {k: np.mean([t[k] for t in locals_], axis=0) for k in tensors}

    x_test, y_test = frame_to_arrays(contract, fed.test, "pooled-test")
    for site_id, env in envs.items():
        x_train, _ = frame_to_arrays(contract, fed.sites[site_id].train, site_id)
        scaler = fit_scaler(contract, x_train)
        probs = predict_proba("logreg", tensors, scaler.transform(x_test), contract.num_classes)
        accuracy = float((probs.argmax(axis=1) == y_test).mean())
        assert accuracy >= 0.90, f"{site_id}: test accuracy {accuracy:.3f} after {ROUNDS} rounds"

        entries = LedgerStore(minio, env.bucket, site_id).entries()
        assert len(entries) == ROUNDS
        n = len(fed.sites[site_id].train)
        event = dp_sgd_event(
            n, HYPER["batch_size"], HYPER["local_epochs"], HYPER["noise_multiplier"]
        )
        lifetime = rdp_epsilon([e.event for e in entries], 1e-5)
        assert lifetime == pytest.approx(rdp_epsilon([event] * ROUNDS, 1e-5), abs=1e-6)
        assert lifetime <= 8.0, f"{site_id}: epsilon {lifetime:.2f} over 5 rounds"
        print(f"{site_id}: test accuracy {accuracy:.3f}, epsilon {lifetime:.3f} (RDP, 5 rounds)")
