"""`evaluate` executor: score the round's global model on the site's holdout; metrics only.

Reads the holdout table (and, for "site_zscore" datasets, the training table to fit the same
site scaler the `train` task uses: `components.datasets.features.fit_scaler`), runs the numpy
forward pass (`components.evaluate.forward`) and writes `metrics.json`. Bad site data gives
`status: "abstained"` with a reason naming the site and the check and null metrics; a global
model that does not match `model_name`/`dataset` raises (a pipeline bug).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from components.common.artifact_files import METRICS_FILE, write_json
from components.common.global_model import read_global_model
from components.common.secrets import MissingSecretError
from components.common.site_task import SiteTask, TaskInputError
from components.datasets.features import DataError, fit_scaler, frame_to_arrays, unscale_target
from components.datasets.io import ClientFactory, read_site_table, site_client_factory
from components.datasets.site import SiteData, check_own_bucket
from components.evaluate.forward import predict_proba
from components.evaluate.metrics import (
    classification_metrics,
    regression_metrics,
    residual_edges,
)


def _null_metrics(site_id: str, round_index: int, labels: list[int], reason: str) -> dict:
    return {
        "site_id": site_id,
        "round": round_index,
        "status": "abstained",
        "reason": f"site {site_id} abstains from evaluation: {reason}",
        "accuracy": None,
        "loss": None,
        "auc": None,
        "auc_method": None,
        "num_examples": None,
        "confusion_matrix": None,
        "labels": labels,
        "model_version": None,
    }


def _arrays(data: SiteData, site_id: str, factory: ClientFactory):
    contract = data.contract
    for uri in (data.holdout_uri, data.train_uri):
        check_own_bucket(data.site, uri)
    holdout = read_site_table(data.holdout_uri, factory, site_id, contract)
    x, y = frame_to_arrays(contract, holdout, site_id, min_rows=contract.min_holdout_rows)
    if contract.encoding.scaling == "fixed":
        scaler = fit_scaler(contract, x[:0])
    else:
        train = read_site_table(data.train_uri, factory, site_id, contract)
        x_train, _ = frame_to_arrays(contract, train, site_id)
        scaler = fit_scaler(contract, x_train)
    return scaler.transform(x), y


def _forward(model_name: str, tensors, x, contract):
    """Model outputs on `x`: the numpy forward pass of the built-in models, or Keras for your
    own builder (`package.module:function`, kwargs from the contract)."""
    from components.train.models import is_builder, model_from_tensors

    if not is_builder(model_name):
        return predict_proba(model_name, tensors, x, contract.num_outputs)
    kwargs = contract.builder_kwargs(model_name)
    model = model_from_tensors(model_name, x.shape[1], contract.num_outputs, tensors, kwargs)
    return np.asarray(model(x, training=False).numpy(), dtype=np.float64)


def evaluate_site(
    task: SiteTask,
    *,
    model_name: str,
    global_model: str,
    client_factory: ClientFactory | None = None,
) -> dict[str, Any]:
    """The `metrics.json` body for this site and round (`task` built with its dataset)."""
    data, site_id, round_index = task.site_data(), task.site_id, task.round_index
    min_cell_count = int(task.policy.metrics.min_cell_count)
    model = read_global_model(global_model)
    for field, wanted in (("model_name", model_name), ("dataset", data.contract.name)):
        if model.meta.get(field) != wanted:
            raise TaskInputError(
                f"site {site_id}: global model {global_model} has {field} "
                f"{model.meta.get(field)!r}, task input {wanted!r}"
            )
    labels = list(data.contract.labels)
    try:
        x, y = _arrays(data, site_id, client_factory or site_client_factory(data.site))
    except DataError as exc:
        return _null_metrics(
            site_id, round_index, labels, f"data check {exc.check!r}: {exc.detail}"
        )
    except MissingSecretError as exc:
        return _null_metrics(site_id, round_index, labels, f"cannot read its data: {exc}")
    contract = data.contract
    outputs = _forward(model_name, model.tensors, x, contract)
    if contract.is_regression:
        predicted = unscale_target(contract, outputs)
        edges = residual_edges(contract.target.scale)
        metrics = regression_metrics(y, predicted, edges, min_cell_count)
    else:
        metrics = classification_metrics(np.asarray(labels)[y], outputs, labels, min_cell_count)
    return {
        "site_id": site_id,
        "round": round_index,
        "status": "evaluated",
        "reason": None,
        "task": contract.task,
        **metrics,
        "model_version": model.version,
    }


def write_metrics(folder: str | Path, body: dict[str, Any]) -> Path:
    """Create the artifact folder and write `metrics.json`; returns its path."""
    return write_json(folder, METRICS_FILE, body)


def run(
    task: SiteTask,
    *,
    global_model: str,
    evaluation: str,
    client_factory: ClientFactory | None = None,
    audit: bool = False,
) -> dict[str, Any]:
    """Evaluate; write `<evaluation>/metrics.json` (components/CONTRACT.md). Returns the body.

    `task` carries the dataset and `model_name`; `client_factory` (tests) replaces the minio
    client built from the site spec and secrets. `audit` (the component sets it): the
    evaluation is appended to the site's audit chain, which is then checkpointed (a signed
    head per round).
    """
    task.require("dataset", "model_name")
    body = evaluate_site(
        task,
        model_name=str(task.settings.model_name),
        global_model=global_model,
        client_factory=client_factory,
    )
    if audit:
        _audit_evaluation(task, body, client_factory)
    write_metrics(evaluation, body)
    return body


def _audit_evaluation(
    task: SiteTask, body: dict[str, Any], client_factory: ClientFactory | None
) -> None:
    from components.audit.events import site_task_log

    client = (client_factory or site_client_factory(task.site))()
    log = site_task_log(task, client)
    accuracy = body.get("accuracy")
    log.append(
        "evaluation",
        {
            "round": task.round_index,
            "model_version": body.get("model_version"),
            "status": body.get("status"),
            "accuracy": accuracy,
            "loss": body.get("loss"),
            "summary": f"global model v{body.get('model_version')}: holdout accuracy "
            f"{accuracy:.4f}"
            if accuracy is not None
            else str(body.get("reason")),
        },
    )
    log.checkpoint()
