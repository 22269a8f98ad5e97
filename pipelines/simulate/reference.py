"""FedAvg without TFF: the pipeline's own local training (`train_dp_sgd`, DP off) per site,
then `fedavg_step` in numpy. The parity reference for `tff_runtime`."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from pipelines.simulate.data import FederatedData
from pipelines.simulate.spec import FederationSpec, client_weight, fedavg_step, shuffle_seed_for


def fedavg_reference(
    spec: FederationSpec, data: FederatedData, initial: Mapping[str, np.ndarray]
) -> dict[str, np.ndarray]:
    """Final global tensors after `spec.rounds` rounds of Keras SGD + numpy FedAvg."""
    from components.train.dpsgd import DpSgdConfig, train_dp_sgd

    config = DpSgdConfig(
        batch_size=spec.batch_size,
        local_epochs=spec.local_epochs,
        learning_rate=spec.learning_rate,
        noise_multiplier=0.0,
        l2_norm_clip=0.0,
        dp_enabled=False,
    )
    global_tensors = {k: np.asarray(v, np.float32) for k, v in initial.items()}
    for round_index in range(1, spec.rounds + 1):
        local, weights = [], []
        for site_id in spec.site_ids:
            site = data.sites[site_id]
            trained = train_dp_sgd(
                spec.model_name,
                global_tensors,
                site.x,
                site.y,
                data.num_classes,
                config,
                sampling_seed=shuffle_seed_for(spec.seed, site_id, spec.run_id, round_index),
                noise_seed=0,
            )
            local.append(trained.tensors)
            weights.append(client_weight(spec, trained.steps * spec.batch_size))
        global_tensors = fedavg_step(global_tensors, local, weights)
    return global_tensors


def accuracy(spec: FederationSpec, data: FederatedData, tensors: Mapping[str, np.ndarray]) -> float:
    """Accuracy of the global model on the pooled test set."""
    from components.train.models import model_from_tensors

    model = model_from_tensors(spec.model_name, data.num_features, data.num_classes, tensors)
    probs = model(data.test.x, training=False).numpy()
    return float(np.mean(np.argmax(probs, axis=1) == data.test.y))
