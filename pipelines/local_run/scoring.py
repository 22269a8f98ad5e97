"""Host-side figures of a local run: pooled test accuracy of each global model and the
centralized baseline (the same model trained on the pooled training data, DP off).

The host prepared the data, so it holds the pooled test set and every site's training table.
Features are scaled with the dataset contract's scaler fitted on the union of the sites'
training tables (components.datasets.features: the pooled-scoring option).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from components.datasets.features import (
    Scaler,
    fit_scaler,
    frame_to_arrays,
    scale_target,
    unscale_target,
)
from components.domain.contract import DataContract


@dataclass(frozen=True)
class PooledData:
    """Scaled pooled training data (union of the sites' train tables) and pooled test set."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    num_classes: int
    scaler: Scaler
    contract: DataContract | None = None

    @property
    def regression(self) -> bool:
        return self.contract is not None and self.contract.is_regression


def load_pooled(
    contract: DataContract,
    train_csvs: Sequence[Path],
    test_csv: Path,
    published: tuple[np.ndarray, np.ndarray] | None = None,
) -> PooledData:
    """Read the sites' training CSVs and the pooled test CSV; scale with the union scaler
    (`published`: the federated_zscore mean/std the run published, as the sites scaled)."""
    train = pd.concat([pd.read_csv(p) for p in train_csvs], ignore_index=True)
    x_train, y_train = frame_to_arrays(contract, train, "pooled-train")
    x_test, y_test = frame_to_arrays(contract, pd.read_csv(test_csv), "pooled-test")
    scaler = fit_scaler(contract, x_train, published)
    return PooledData(
        scaler.transform(x_train),
        y_train,
        scaler.transform(x_test),
        y_test,
        contract.num_outputs,
        scaler,
        contract,
    )


def accuracy_and_loss(probabilities: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    """(accuracy, mean cross-entropy) of class probabilities [n, c] against int labels [n]."""
    probs = np.clip(np.asarray(probabilities, dtype=np.float64), 1e-12, 1.0)
    labels = np.asarray(labels, dtype=np.int64)
    accuracy = float(np.mean(np.argmax(probs, axis=1) == labels))
    loss = float(-np.mean(np.log(probs[np.arange(len(labels)), labels])))
    return accuracy, loss


def score_tensors(
    model_name: str, tensors: Mapping[str, np.ndarray], data: PooledData
) -> dict[str, float]:
    """{"accuracy", "loss"} of a model holding `tensors` on the pooled test set; for a
    regression contract {"loss" (MSE), "mae", "rmse", "r2"} in the target's unit."""
    from components.train.models import model_from_tensors

    kwargs = data.contract.builder_kwargs(model_name) if data.contract else None
    model = model_from_tensors(model_name, data.x_test.shape[1], data.num_classes, tensors, kwargs)
    outputs = model(data.x_test, training=False).numpy()
    if data.regression:
        assert data.contract is not None
        return regression_scores(data.y_test, unscale_target(data.contract, outputs))
    accuracy, loss = accuracy_and_loss(outputs, data.y_test)
    return {"accuracy": accuracy, "loss": loss}


def regression_scores(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    """MSE (as loss), MAE, RMSE and R² of predictions against the truth (target unit)."""
    y = np.asarray(y_true, dtype=np.float64).reshape(-1)
    residual = np.asarray(y_pred, dtype=np.float64).reshape(-1) - y
    mse = float(np.mean(residual**2))
    r2 = 1.0 - float(np.sum(residual**2)) / float(np.sum((y - y.mean()) ** 2))
    return {"loss": mse, "mae": float(np.mean(np.abs(residual))), "rmse": mse**0.5, "r2": r2}


def centralized_baseline(
    model_name: str,
    data: PooledData,
    *,
    epochs: int,
    batch_size: int,
    learning_rate: float,
    seed: int,
) -> dict[str, float | int | str]:
    """Train `model_name` from its seeded init on the pooled training data without DP.

    Same optimizer (plain SGD), batch size and learning rate as a site; `epochs` is the
    federated run's total local epochs (rounds × local_epochs).
    """
    from components.train.dpsgd import DpSgdConfig, train_dp_sgd
    from components.train.models import initial_weights

    kwargs = data.contract.builder_kwargs(model_name) if data.contract else None
    init = initial_weights(model_name, data.x_train.shape[1], data.num_classes, seed, kwargs)
    config = DpSgdConfig(
        batch_size=min(batch_size, len(data.y_train)),
        local_epochs=epochs,
        learning_rate=learning_rate,
        noise_multiplier=0.0,
        l2_norm_clip=0.0,
        dp_enabled=False,
    )
    targets = scale_target(data.contract, data.y_train) if data.contract else data.y_train
    result = train_dp_sgd(
        model_name,
        init,
        data.x_train,
        targets,
        data.num_classes,
        config,
        sampling_seed=seed,
        noise_seed=seed,
        model_kwargs=kwargs,
    )
    scores = score_tensors(model_name, result.tensors, data)
    return {
        **{f"test_{k}": v for k, v in scores.items()},
        "train_examples": int(len(data.y_train)),
        "test_examples": int(len(data.y_test)),
        "epochs": epochs,
        "batch_size": batch_size,
        "learning_rate": learning_rate,
        "model": model_name,
        "dp": "off",
    }
