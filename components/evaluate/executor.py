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
from components.common.create_only import STORE_ERRORS
from components.common.secrets import MissingSecretError
from components.common.site_task import SiteTask, TaskInputError
from components.datasets.features import DataError, fit_scaler, frame_to_arrays, unscale_target
from components.datasets.federated_stats import published_scaling
from components.datasets.io import ClientFactory, read_site_table, site_client_factory
from components.datasets.site import SiteData, check_own_bucket
from components.evaluate.forward import predict_proba
from components.evaluate.metrics import (
    classification_metrics,
    regression_metrics,
    residual_edges,
)
from components.he.global_model import site_global_model
from components.privacy.ledger import LedgerError


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


def _arrays(data: SiteData, site_id: str, factory: ClientFactory, meta: dict | None = None):
    """(holdout x, y, training x, y), scaled as train scales them (the training rows are also
    the members of the membership audit)."""
    contract = data.contract
    for uri in (data.holdout_uri, data.train_uri):
        check_own_bucket(data.site, uri)
    holdout = read_site_table(data.holdout_uri, factory, site_id, contract)
    x, y = frame_to_arrays(contract, holdout, site_id, min_rows=contract.min_holdout_rows)
    train = read_site_table(data.train_uri, factory, site_id, contract)
    x_train, y_train = frame_to_arrays(contract, train, site_id)
    if contract.encoding.scaling == "federated_zscore":  # the published global mean/std
        scaler = fit_scaler(contract, x[:0], published_scaling(contract, meta or {}))
    elif contract.encoding.scaling == "fixed":
        scaler = fit_scaler(contract, x[:0])
    else:
        scaler = fit_scaler(contract, x_train)
    return scaler.transform(x), y, scaler.transform(x_train), y_train


def _example_losses(model_name: str, tensors: Any, x: Any, y: Any, contract: Any) -> np.ndarray:
    """Per-example losses: −log p(true class), or the squared error in target units."""
    from components.evaluate.membership import per_example_losses

    outputs = _forward(model_name, tensors, x, contract)
    if contract.is_regression:
        residual = unscale_target(contract, outputs) - np.asarray(y, dtype=np.float64)
        return np.square(residual).reshape(-1)
    return per_example_losses(outputs, np.asarray(y, dtype=np.int64))


def _membership(
    task: SiteTask,
    model_name: str,
    tensors: Any,
    train: tuple[Any, Any],
    holdout: tuple[Any, Any],
    client_factory: ClientFactory,
) -> dict[str, Any]:
    """The membership-inference audit of the round's global model at this site: per-example
    losses on its training rows (members) and holdout rows (non-members) turned into attack
    AUC and advantage beside the bound its (ε, δ) allows (`membership.site_membership`). The
    losses never leave; ε comes from the site's ledger (this run's charges up to this round)."""
    from components.common.create_only import sse_for_policy
    from components.evaluate.membership import site_membership, site_privacy
    from components.privacy.accounting import epsilons, rdp_epsilon
    from components.privacy.ledger_store import LedgerStore

    data, policy = task.site_data(), task.policy
    losses = [
        _example_losses(model_name, tensors, x, y, data.contract) for x, y in (train, holdout)
    ]
    sse = sse_for_policy(policy, task.site_id)
    store = LedgerStore(client_factory(), data.site.object_store.bucket, task.site_id, sse)
    # this run's charges so far: training rounds and any statistics release (round 0)
    entries = [
        e for e in store.entries() if e.run_id == task.run_id and e.round <= task.round_index
    ]
    delta = policy.dp.delta
    reveal = bool(policy.export.reveal_num_examples)
    charges = [
        (0.0 if e.non_private else rdp_epsilon([e.event], e.delta), e.non_private) for e in entries
    ]
    composed = None
    if reveal and entries and not any(e.non_private for e in entries):
        composed = epsilons([e.event for e in entries], delta).rdp
    privacy = site_privacy(
        charges,
        delta=delta,
        epsilon_per_round=policy.dp.epsilon_per_round,
        reveal_num_examples=reveal,
        composed_epsilon=composed,
    )
    return site_membership(
        losses[0], losses[1], privacy, reveal_num_examples=reveal, seed=task.round_index
    )


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
    membership: bool = False,
) -> dict[str, Any]:
    """The `metrics.json` body for this site and round (`task` built with its dataset);
    with `membership` also the membership-inference audit (`membership`: AUC, advantage and
    the bound only; null when not run)."""
    data, site_id, round_index = task.site_data(), task.site_id, task.round_index
    min_cell_count = int(task.policy.metrics.min_cell_count)
    factory = client_factory or site_client_factory(data.site)
    # protection he: decrypted with the site's secret context (HeError when it has none)
    model = site_global_model(global_model, data.site, factory)
    for field, wanted in (("model_name", model_name), ("dataset", data.contract.name)):
        if model.meta.get(field) != wanted:
            raise TaskInputError(
                f"site {site_id}: global model {global_model} has {field} "
                f"{model.meta.get(field)!r}, task input {wanted!r}"
            )
    labels = list(data.contract.labels)
    try:
        x, y, x_train, y_train = _arrays(data, site_id, factory, model.meta)
    except DataError as exc:
        return _null_metrics(
            site_id, round_index, labels, f"data check {exc.check!r}: {exc.detail}"
        )
    except MissingSecretError as exc:
        return _null_metrics(site_id, round_index, labels, f"cannot read its data: {exc}")
    except STORE_ERRORS as exc:
        code = getattr(exc, "code", None) or type(exc).__name__
        return _null_metrics(
            site_id,
            round_index,
            labels,
            f"its bucket {data.site.object_store.bucket!r} is unreachable or refused ({code})",
        )
    contract = data.contract
    outputs = _forward(model_name, model.tensors, x, contract)
    if contract.is_regression:
        predicted = unscale_target(contract, outputs)
        edges = residual_edges(contract.target.scale)
        metrics = regression_metrics(y, predicted, edges, min_cell_count)
    else:
        metrics = classification_metrics(np.asarray(labels)[y], outputs, labels, min_cell_count)
    body = {
        "site_id": site_id,
        "round": round_index,
        "status": "evaluated",
        "reason": None,
        "task": contract.task,
        **metrics,
        "model_version": model.version,
        "membership": None,
    }
    if membership:
        try:
            body["membership"] = _membership(
                task, model_name, model.tensors, (x_train, y_train), (x, y), factory
            )
        except (ValueError, IndexError, LedgerError, *STORE_ERRORS) as exc:
            body["membership_error"] = f"site {site_id}: membership audit not run: {exc}"
    return body


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
    membership-inference audit is run (`metrics.json` `membership`), the evaluation is
    appended to the site's audit chain, which is then checkpointed (a signed head per round).
    """
    task.require("dataset", "model_name")
    body = evaluate_site(
        task,
        model_name=str(task.settings.model_name),
        global_model=global_model,
        client_factory=client_factory,
        membership=audit,
    )
    if audit:  # a dead store must not fail the run: the note says what is missing
        from components.audit.events import append_or_note

        note = append_or_note(
            lambda: _audit_evaluation(task, body, client_factory), task.site.object_store.bucket
        )
        if note is not None:
            body["audit"] = note
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
            "membership": body.get("membership"),
            "summary": f"global model v{body.get('model_version')}: holdout accuracy "
            f"{accuracy:.4f}"
            if accuracy is not None
            else str(body.get("reason")),
        },
    )
    log.checkpoint()
