"""The federation in TensorFlow Federated's simulation runtime (DP off, FedAvg).

`tff.learning.algorithms.build_weighted_fed_avg` (weighting "num_examples") or
`build_unweighted_fed_avg` ("uniform") over `tff.learning.models.from_keras_model` of the
registry model; client optimizer SGD with the spec's learning rate, server SGD with learning
rate 1.0; the global model starts from the registry's seeded initial weights; each site's
client dataset holds its examples in the train task's batch order. TFF's worker binary is
reaped at exit (`pipelines.simulate.reaper`).
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

import numpy as np

from pipelines.simulate.data import FederatedData, federated_data
from pipelines.simulate.reaper import install_reaper
from pipelines.simulate.spec import FederationSpec, batch_order


@dataclass
class SimulationResult:
    """Final global tensors (named as `components.train.models.get_weights`) and per-round
    training metrics as TFF reports them."""

    tensors: dict[str, np.ndarray]
    rounds: list[dict[str, float]] = field(default_factory=list)


@contextlib.contextmanager
def _worker_output_to_devnull() -> Iterator[None]:
    """TFF starts its worker binary with `stdout=sys.stdout, stderr=sys.stderr`: point both at
    /dev/null meanwhile, so the worker neither holds the caller's pipes open (a piped
    `fedpipe simulate | tail` would wait for it) nor needs a real file descriptor behind
    `sys.stdout` (pytest's capture has none)."""
    with open(os.devnull, "w") as devnull:
        saved = sys.stdout, sys.stderr
        sys.stdout = sys.stderr = devnull
        try:
            yield
        finally:
            sys.stdout, sys.stderr = saved


def _names_in_order(spec: FederationSpec, data: FederatedData) -> list[str]:
    from components.train.models import _tensor_name, build_model

    model = build_model(spec.model_name, data.num_features, data.num_classes, seed=spec.seed)
    if model.non_trainable_weights:
        raise ValueError(f"model {spec.model_name}: non-trainable weights are not supported")
    return [_tensor_name(v) for v in model.trainable_weights]


def run_tff(
    spec: FederationSpec,
    data: FederatedData | None = None,
    initial: Mapping[str, np.ndarray] | None = None,
) -> SimulationResult:
    """Run `spec.rounds` rounds in TFF; `data`/`initial` default to the pipeline's split and
    the registry's seeded initial weights."""
    install_reaper()
    import tensorflow as tf
    import tensorflow_federated as tff

    from components.train.models import build_model, initial_weights

    data = data or federated_data(
        spec.dataset,
        spec.site_ids,
        data_seed=spec.split_seed,
        alpha=spec.alpha,
        test_fraction=spec.test_fraction,
        holdout_fraction=spec.holdout_fraction,
    )
    if initial is None:
        initial = initial_weights(spec.model_name, data.num_features, data.num_classes, spec.seed)
    names = _names_in_order(spec, data)
    input_spec = (
        tf.TensorSpec([None, data.num_features], tf.float32),
        tf.TensorSpec([None], tf.int64),
    )

    def model_fn():
        keras_model = build_model(spec.model_name, data.num_features, data.num_classes, spec.seed)
        return tff.learning.models.from_keras_model(
            keras_model,
            loss=tf.keras.losses.SparseCategoricalCrossentropy(),
            input_spec=input_spec,
            metrics=[tf.keras.metrics.SparseCategoricalAccuracy()],
        )

    builder = (
        tff.learning.algorithms.build_weighted_fed_avg
        if spec.weighting == "num_examples"
        else tff.learning.algorithms.build_unweighted_fed_avg
    )
    # A fresh local C++ execution context: its worker binary starts on first use, so a worker
    # reaped earlier in this process (`reap_children`, a test's teardown) is not reused.
    tff.backends.native.set_sync_local_cpp_execution_context()
    process = builder(
        model_fn,
        client_optimizer_fn=tff.learning.optimizers.build_sgdm(learning_rate=spec.learning_rate),
        server_optimizer_fn=tff.learning.optimizers.build_sgdm(learning_rate=1.0),
    )
    with _worker_output_to_devnull():
        state = process.initialize()  # starts the worker binary of the fresh context
    start = process.get_model_weights(state)
    state = process.set_model_weights(
        state,
        tff.learning.models.ModelWeights(
            trainable=[np.asarray(initial[n], np.float32) for n in names],
            non_trainable=list(start.non_trainable),
        ),
    )
    result = SimulationResult(tensors={})
    for round_index in range(1, spec.rounds + 1):
        client_data = []
        for site_id in spec.site_ids:
            site = data.sites[site_id]
            order = batch_order(spec, site_id, round_index, len(site.y))
            client_data.append(
                tf.data.Dataset.from_tensor_slices((site.x[order], site.y[order])).batch(
                    spec.batch_size
                )
            )
        output = process.next(state, client_data)
        state = output.state
        train = output.metrics.get("client_work", {}).get("train", {})
        result.rounds.append({k: float(v) for k, v in train.items()})
    final = process.get_model_weights(state)
    result.tensors = {
        n: np.asarray(v, dtype=np.float32) for n, v in zip(names, final.trainable, strict=True)
    }
    return result


def simulate_federation(
    spec: FederationSpec,
    data: FederatedData | None = None,
    initial: Mapping[str, np.ndarray] | None = None,
) -> dict[str, np.ndarray]:
    """The final global weights after `spec.rounds` TFF rounds, as named float32 tensors."""
    return run_tff(spec, data, initial).tensors
