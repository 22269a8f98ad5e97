"""What both paths must share to compute the same rounds (pure, no TF).

A round: every site starts from the global model, runs plain SGD (DP off) over its batches,
and the server averages the deltas (weights below) and applies SGD with learning rate 1.0,
i.e. `global += mean(local - global)`: FedAvg.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

WEIGHTINGS = ("uniform", "num_examples")


@dataclass(frozen=True)
class FederationSpec:
    """dataset: data contract name; site_ids: in the order the data is split over them;
    model_name: `components.train.models` registry name; rounds; local_epochs; batch_size;
    learning_rate: client SGD step size; seed: model init, batch order and (unless
    `data_seed` is given) the split, as `fedpipe run --local --seed`; data_seed: the split
    (`numpy.random.default_rng(data_seed)`); run_id: the pipeline run whose batch order is
    reproduced (the train task seeds its order with the run id); weighting: "uniform" (each site 1) or
    "num_examples" (examples processed in local training: epochs * whole batches * batch_size,
    TFF's NUM_EXAMPLES); alpha: None = IID split, else Dirichlet label skew."""

    dataset: str
    site_ids: tuple[str, ...]
    model_name: str = "logreg"
    rounds: int = 3
    local_epochs: int = 1
    batch_size: int = 32
    learning_rate: float = 0.1
    seed: int = 0
    data_seed: int | None = None
    run_id: str = "simulate"
    weighting: str = "uniform"
    alpha: float | None = None
    test_fraction: float = 0.2
    holdout_fraction: float = 0.2

    def __post_init__(self) -> None:
        if not self.site_ids or len(set(self.site_ids)) != len(self.site_ids):
            raise ValueError(f"site_ids must be non-empty and unique, got {self.site_ids}")
        if self.weighting not in WEIGHTINGS:
            raise ValueError(f"weighting {self.weighting!r}: use one of {WEIGHTINGS}")
        for name in ("rounds", "local_epochs", "batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not self.learning_rate > 0:
            raise ValueError(f"learning_rate must be > 0, got {self.learning_rate}")

    @property
    def split_seed(self) -> int:
        """The seed of the data split: `data_seed`, else `seed` (as `fedpipe run --local`)."""
        return self.seed if self.data_seed is None else self.data_seed


def shuffle_seed_for(seed: int, site_id: str, run_id: str, round_index: int) -> int:
    """The batch-order seed of `site_id` in round `round_index` (1-based) of run `run_id`:
    the train task's derivation, 62 bits of sha256 of `[seed, site_id, run_id, "<round>"]`
    as JSON (`components.train.executor._derive_seed`)."""
    text = json.dumps([int(seed), str(site_id), str(run_id), str(round_index)])
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big") >> 2


def batch_order(
    spec: FederationSpec, site_id: str, round_index: int, num_examples: int
) -> np.ndarray:
    """Example indices in training order for one site and round (the train task's order:
    `components.train.dpsgd.epoch_batches`: a fresh seeded permutation per epoch, whole
    batches only)."""
    from components.train.dpsgd import epoch_batches

    return epoch_batches(
        num_examples,
        spec.batch_size,
        spec.local_epochs,
        shuffle_seed_for(spec.seed, site_id, spec.run_id, round_index),
    )


def client_weight(spec: FederationSpec, examples_processed: int) -> float:
    """A site's FedAvg weight given the examples its local training processed."""
    return 1.0 if spec.weighting == "uniform" else float(examples_processed)


def fedavg_step(
    global_tensors: dict[str, np.ndarray],
    local: Sequence[dict[str, np.ndarray]],
    weights: Sequence[float],
) -> dict[str, np.ndarray]:
    """`global + sum_i w_i (local_i - global) / sum_i w_i`, float32 (server SGD, lr 1.0)."""
    total = float(sum(weights))
    if not local or total <= 0:
        raise ValueError("FedAvg needs at least one site with positive weight")
    out: dict[str, np.ndarray] = {}
    for name, g in global_tensors.items():
        g64 = np.asarray(g, dtype=np.float64)
        delta = sum(
            w * (np.asarray(t[name], np.float64) - g64) for w, t in zip(weights, local, strict=True)
        )
        out[name] = (g64 + delta / total).astype(np.float32)
    return out
