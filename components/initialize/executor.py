"""`initialize` executor: the run's starting global model (seeded init, or resume from GCS).

Seeded: `components.train.models.initial_weights(model_name, num_features, num_outputs, seed)`
with the shapes of the data contract (`contract_json`, a compiled pipeline input covered by
`config_digest`); version 0, parent null, no optimizer state.
Resume: the version `models/<run>/latest.json` points at in the coordinator's bucket (model,
server-optimizer state, meta), sha256-checked; when this run has published nothing yet, the
newest published version of the same model and dataset from any other run (continuation
across runs, e.g. a recurring pipeline whose run id is the KFP job id; version numbers go on),
else a seeded init. With a `federated_zscore` contract the global mean/std the `scaling` task
published (`stats/<run>/global.json`) go into the meta as `feature_scaling`; aggregate carries
them to every later version, and train and evaluate scale with them. A published version under
`aggregation.protection: he` (`model.ckks`) resumes as it is, encrypted
(`resumed_encrypted`): the sites decrypt it, the next aggregate adds to it. Without resume, a run that already published versions starts again from the same seeded
init: its aggregates then confirm the identical versions already published (a rerun of the
same run id replays its rounds) and refuse any different one (`PublishConflictError`).

Audit cross-reference. The initialize record (coordinator's chain) references, by hash, each
site's admission and validation records its quorum decision rested on. It takes those
hashes from the validation summaries it already receives: validate signs the two records
into the site's chain and writes their hashes into the same summary (`audit`). The access
rules would let the coordinator's read-only identity GET the site's `admission/` and
`audit/` objects, but initialize is compiled without the sites' read credentials, site
specs and policies (the admission key is per compiled policy digest), and reading them
would check nothing `fedpipe audit verify` does not: a hash that no site chain holds is
named there, and so is a site taking part whose accepted admission record the initialize
record does not reference. Before any update is used, aggregate reads and checks the
admission record itself under its fixed key with that read identity.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from components.aggregation.publish import (
    latest_key,
    load_latest,
    newest_across_runs,
    read_latest,
)
from components.aggregation.quorum import RunQuorumError, check_run_quorum, sites_taking_part
from components.audit.run_events import (
    INITIALIZE,
    coordinator_task_log,
    initialize_body,
    record_refs,
    site_records,
)
from components.common.artifact_files import SUMMARY_FILE
from components.common.config_digest import check_config
from components.common.global_model import GlobalModel, GlobalModelError, write_global_model
from components.common.object_store import coordinator_gcs_client
from components.common.tensors import dump_tensors, load_tensors
from components.domain.canonical import sha256_hex
from components.domain.contract import DataContract
from components.domain.models import Site
from components.domain.run_id import effective_run_id
from components.he.global_model import (
    EncryptedGlobal,
    encrypted_from_bytes,
    is_encrypted,
    write_encrypted,
)

log = logging.getLogger(__name__)


class InitializeError(RuntimeError):
    """The starting model cannot be produced as asked (resume mismatch, run already used)."""


def seeded_model(model_name: str, contract: DataContract, seed: int, run: str) -> GlobalModel:
    """Version 0 from the model registry, seeded; shapes from the data contract."""
    from components.train.models import initial_weights, is_builder

    if is_builder(model_name) and (contract.model is None or contract.model.builder != model_name):
        declared = contract.model.builder if contract.model else "none"
        raise InitializeError(
            f"initialize: model {model_name!r} is not the builder the data contract "
            f"{contract.name!r} declares (model.builder: {declared}); declare it there with "
            "its kwargs"
        )
    kwargs = contract.builder_kwargs(model_name)
    tensors = initial_weights(model_name, contract.num_features, contract.num_outputs, seed, kwargs)
    meta: dict[str, Any] = {
        "version": 0,
        "model_name": model_name,
        "dataset": contract.name,
        "task": contract.task,
        "parent": None,
        "run_id": run,
        "seed": seed,
        "source": "seeded init",
        # what the model is, for every reader: tensor names and shapes, and a builder's call
        "tensors": {name: list(value.shape) for name, value in sorted(tensors.items())},
        "inputs": {"features": contract.num_features, "names": contract.encoded_names},
        "outputs": contract.num_outputs,
    }
    if kwargs is not None:
        meta["builder"] = {"reference": model_name, "kwargs": kwargs}
    return GlobalModel(tensors, meta, None)


def run(
    *,
    coordinator_json: str,
    contract_json: str,
    config_digest: str,
    run_id: str,
    kfp_job_id: str,
    model_name: str,
    dataset: str,
    seed: int,
    resume: bool,
    global_model: str,
    validations: Mapping[str, str] | None = None,
    min_sites: int = 1,
) -> dict[str, Any]:
    """Write the global_model artifact folder `global_model`; returns its meta.

    `validations` ({site_id: validation summary folder}, every member site's): first,
    `RunQuorumError` when fewer than `min_sites` sites passed (data contract, privacy budget),
    naming each abstaining site with its reason, so nobody trains. (The reasons stay in the
    coordinator's log: the global model goes to every site, a site's reason is its own.)
    `contract_json`: the data contract (model shapes), covered by `config_digest`.
    When the coordinator's site spec names a signing key, the decision is appended to its
    audit chain (`components.audit.run_events`): the sites taking part and abstaining, and
    the starting model's version and sha256, or the quorum refusal before the error."""
    check_config(
        config_digest,
        task="initialize",
        coordinator_json=coordinator_json,
        contract_json=contract_json,
    )
    contract = DataContract.parse_raw(contract_json)
    if contract.name != dataset:
        raise InitializeError(
            f"initialize: contract_json is contract {contract.name!r}, the run's dataset is "
            f"{dataset!r}"
        )
    run_name = effective_run_id(run_id, kfp_job_id, "initialize")
    coordinator = Site.parse_raw(coordinator_json)
    audit = coordinator_task_log(coordinator, run_name)
    passed: list[str] = []
    abstained: dict[str, str] = {}
    records: dict[str, dict[str, str]] = {}
    if validations is not None:
        summaries = {site: _summary(folder) for site, folder in validations.items()}
        passed, abstained = sites_taking_part(summaries)
        records = site_records(summaries)
        try:
            check_run_quorum(summaries, min_sites)
        except RunQuorumError as exc:  # the refusal is on record before the run stops
            if audit is not None:
                body = initialize_body(
                    passed=passed,
                    abstained=abstained,
                    min_sites=min_sites,
                    refused=str(exc),
                    records=records,
                )
                audit.append(INITIALIZE, body, record_refs(records))
            raise
        for site, why in abstained.items():
            log.warning("site %s abstains from this run: %s", site, why)
        log.info("%d site(s) take part: %s", len(passed), ", ".join(passed))
    gcs = coordinator_gcs_client(coordinator)
    bucket = gcs.bucket(coordinator.object_store.bucket)
    where = f"gs://{bucket.name}/{latest_key(run_name)}"
    model: GlobalModel | EncryptedGlobal
    if not resume:
        model = seeded_model(model_name, contract, seed, run_name)
        pointer = read_latest(bucket, run_name)
        if pointer is not None:
            log.warning(
                "run %s already published up to version %d (%s): replaying from the seeded "
                "init; only identical versions will be confirmed",
                run_name,
                pointer.version,
                where,
            )
            model.meta["replay_of_published"] = pointer.version
    else:
        latest = load_latest(bucket, run_name)
        if latest is None:
            found = newest_across_runs(
                bucket, model_name=model_name, dataset=dataset, exclude_run=run_name
            )
            if found is not None:
                log.info("resume: %s does not exist; continuing run %s", where, found[0])
                latest = found[1]
        if latest is None:
            log.warning("resume: nothing published for %s/%s; seeded init", model_name, dataset)
            model = seeded_model(model_name, contract, seed, run_name)
            model.meta["source"] = (
                f"seeded init (resume: no {model_name}/{dataset} model published in "
                f"gs://{bucket.name})"
            )
        else:
            for field, wanted in (("model_name", model_name), ("dataset", dataset)):
                if latest.meta.get(field) != wanted:
                    raise InitializeError(
                        f"resume: {where} is a {field} {latest.meta.get(field)!r} model, "
                        f"this run asks for {wanted!r}"
                    )
            meta = {
                "version": latest.pointer.version,
                "model_name": model_name,
                "dataset": dataset,
                "parent": latest.meta.get("parent"),
                "run_id": run_name,
                "seed": seed,
                "source": f"resumed from gs://{bucket.name}/{latest.pointer.prefix}",
                "published": f"gs://{bucket.name}/{latest.pointer.prefix}",
            }
            if is_encrypted(latest.meta):  # protection he: the one ciphertext, as published
                model = resumed_encrypted(latest.meta, latest.model_bytes, meta, where)
            else:
                optimizer = (
                    load_tensors(latest.optimizer_bytes)
                    if latest.optimizer_bytes is not None
                    else None
                )
                model = GlobalModel(load_tensors(latest.model_bytes), meta, optimizer)
    if contract.encoding.scaling == "federated_zscore":
        # the scaling task ran before: its published global mean/std travel with every version
        from components.datasets.federated_stats import FEATURE_SCALING_KEY
        from components.datasets.stats_exchange import read_global_statistics

        published = read_global_statistics(gcs, coordinator.object_store.bucket, run_name)
        model.meta[FEATURE_SCALING_KEY] = json.loads(published.to_json())
    if audit is not None:
        body = initialize_body(
            passed=passed,
            abstained=abstained,
            min_sites=min_sites,
            version=int(model.meta["version"]),
            model_sha256=sha256_hex(
                model.bundle if isinstance(model, EncryptedGlobal) else dump_tensors(model.tensors)
            ),
            source=str(model.meta.get("source")),
            records=records,
        )
        audit.append(INITIALIZE, body, record_refs(records))
    if isinstance(model, EncryptedGlobal):
        write_encrypted(global_model, model)
    else:
        write_global_model(global_model, model)
    return model.meta


def resumed_encrypted(
    published: dict[str, Any], bundle: bytes, meta: dict[str, Any], where: str
) -> EncryptedGlobal:
    """The starting model of a resumed he run: the published ciphertext (checked against its
    meta's sha256) under the resumed meta, keeping the context id, base version and layout,
    so the sites decrypt it and the next aggregate adds to it. The coordinator decrypts
    nothing; a run whose policies are not he cannot start from it (its aggregate refuses an
    encrypted model)."""
    try:
        model = encrypted_from_bytes(published, bundle, where)
    except GlobalModelError as exc:
        raise InitializeError(f"resume: {exc}") from None
    return EncryptedGlobal({**meta, "protection": "he", "he": model.meta["he"]}, model.bundle)


def _summary(folder: str) -> dict[str, Any] | None:
    """A validation summary (`summary.json` in `folder`), None when unreadable."""
    try:
        body = json.loads((Path(folder) / SUMMARY_FILE).read_text())
    except (OSError, ValueError):
        return None
    return body if isinstance(body, dict) else None
