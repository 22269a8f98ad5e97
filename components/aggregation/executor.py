"""`aggregate` executor: verify → anomaly screening (`screening`) → quorum → robust rule +
server optimizer → publish → outputs.

Under `aggregation.protection: he` (the sites' policies): verify each site's signed manifest
and ciphertext header → quorum → add the ciphertexts with the public CKKS context from the
coordinator's bucket → add their weighted mean to the encrypted global model, one ciphertext
(`model.ckks`, published as the version's model object) → an encrypted
`global_model` output (`components.he.global_model`) that only the sites decrypt. Nothing
that needs an update's values runs then: no norm guard, no anomaly scores, no quarantine, no
count caps (the sites cap their own weight), no robust rule, no server optimizer
(`round_config` refuses them; `components.domain.protection.rule_conflicts`).

Order matters for "nothing partial": the new version is published to GCS (create-only, then
the `latest` pointer under a generation precondition) before the output folders are written,
and a failed quorum or a publish conflict raises before anything is published or written.
"""

from __future__ import annotations

import inspect
import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from components.aggregation.collect import Collected, collect_updates
from components.aggregation.magnitudes import cap_counts, norm_guard, update_norm
from components.aggregation.publish import publish_version
from components.aggregation.quorum import check_quorum
from components.aggregation.rules import AggregationError
from components.aggregation.screening import Screening, screen
from components.aggregation.verify import model_spec, size_limit
from components.common.artifact_files import MODEL_FILE, ROUND_FILE, write_json
from components.common.config_digest import check_config
from components.common.global_model import GlobalModel, read_global_model, write_global_model
from components.common.object_store import coordinator_gcs_client, site_minio_client
from components.common.tensors import Tensors, dump_tensors
from components.domain.canonical import sha256_hex
from components.domain.models import Aggregation, Policy, Site
from components.domain.protection import ProtectionConflict, federation_protection, rule_conflicts
from components.domain.run_id import effective_run_id

log = logging.getLogger(__name__)

# round.json `anomaly` under protection he: nothing was scored (the same keys, all empty).
UNSCREENED_REPORT: dict[str, Any] = {
    "centre": None,
    "off": "aggregation.protection he: the coordinator sees no single update, so no anomaly "
    "scores, norm guard or quarantine (robust rules are refused too)",
    "scores": {},
    "flagged": {},
    "quarantined": {},
}
# Without a coordinator policy (tests, simulations): the policy field's default.
DEFAULT_NORM_GUARD_FACTOR = Aggregation.__fields__["norm_guard_factor"].default


def _json_object(text: str, name: str) -> dict[str, Any]:
    if not text or not text.strip():
        return {}
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise AggregationError(f"{name}: not valid JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise AggregationError(f"{name}: expected a JSON object, got {type(value).__name__}")
    return value


def epsilon_summary(collected: Collected) -> dict[str, dict[str, Any]]:
    """Per contributing site: the privacy its update declared (signed manifest values)."""
    return {
        site: {
            "epsilon": u.manifest.epsilon,
            "epsilon_pld": u.manifest.epsilon_pld,
            "delta": u.manifest.delta,
            "dp": u.manifest.dp,
        }
        for site, u in sorted(collected.verified.items())
    }


def check_settings(
    rule: str,
    rule_params: Mapping[str, Any],
    server_optimizer: str,
    server_learning_rate: float,
    optimizer_params: Mapping[str, Any],
) -> None:
    """Refuse an unknown rule, rule parameter or optimizer setting before any update is read."""
    from components.aggregation.rules import RULES
    from components.aggregation.server_optimizers import build_server_optimizer

    if rule not in RULES:
        raise AggregationError(f"unknown aggregation rule {rule!r}; choose from {sorted(RULES)}")
    accepted = RULES[rule][0]
    unknown = sorted(set(rule_params) - accepted)
    if unknown:
        raise AggregationError(
            f"rule_params_json: {rule} takes no parameter(s) {unknown}; "
            f"accepted: {sorted(accepted) or 'none'}"
        )
    try:
        build_server_optimizer(server_optimizer, server_learning_rate, **optimizer_params)
    except (ValueError, TypeError) as exc:
        raise AggregationError(f"server optimizer {server_optimizer!r}: {exc}") from exc


def combine(
    previous: GlobalModel,
    collected: Collected,
    *,
    rule: str,
    rule_params: Mapping[str, Any],
    server_optimizer: str,
    server_learning_rate: float,
    optimizer_params: Mapping[str, Any],
    count_caps: Mapping[str, tuple[int, str] | None] | None = None,
) -> tuple[Tensors, Tensors, dict[str, Any]]:
    """(new global tensors, new optimizer state, notes) from the verified updates (deltas).

    count_caps: site -> (largest sample count it may claim as its weight, where that is
    declared) or None (`components.aggregation.magnitudes.cap_counts`)."""
    from components.aggregation.rules import RULES, aggregate

    contributors = sorted(collected.verified)
    deltas = [collected.verified[s].tensors for s in contributors]
    counts = [collected.verified[s].manifest.num_examples for s in contributors]
    notes: dict[str, Any] = {}
    weights = None
    if rule in RULES and RULES[rule][2]:  # the rule takes weights: example counts if all known
        if all(c is not None for c in counts):
            claims = dict(zip(contributors, counts, strict=True))
            capped, cap_notes = cap_counts(claims, count_caps or {})  # type: ignore[arg-type]
            weights = [capped[s] for s in contributors]
            notes["weights"] = "num_examples"
            if cap_notes:
                notes["weights_capped"] = cap_notes
        else:
            hidden = [s for s, c in zip(contributors, counts, strict=True) if c is None]
            notes["weights"] = f"uniform: num_examples not revealed by {', '.join(hidden)}"
    try:
        delta = aggregate(deltas, rule, weights=weights, **rule_params)
    except (ValueError, TypeError) as exc:
        raise AggregationError(f"rule {rule!r} with {dict(rule_params)}: {exc}") from exc
    new_tensors, new_state = apply_server_optimizer(
        previous,
        delta,
        notes,
        rule=rule,
        server_optimizer=server_optimizer,
        server_learning_rate=server_learning_rate,
        optimizer_params=optimizer_params,
    )
    return new_tensors, new_state, notes


def apply_server_optimizer(
    previous: GlobalModel,
    delta: Tensors,
    notes: dict[str, Any],
    *,
    rule: str,
    server_optimizer: str,
    server_learning_rate: float,
    optimizer_params: Mapping[str, Any],
) -> tuple[Tensors, Tensors]:
    """(new global tensors, new optimizer state) from the round's combined delta; notes an
    optimizer state reset; AggregationError for non-finite results."""
    from components.aggregation.server_optimizers import build_server_optimizer

    try:
        optimizer = build_server_optimizer(
            server_optimizer, server_learning_rate, **optimizer_params
        )
        state = previous.optimizer_state
        used = previous.meta.get("server_optimizer")
        if state is not None and used not in (None, server_optimizer):
            notes["optimizer_state"] = f"reset: version {previous.version} was built with {used!r}"
            state = None
        if state is None:
            state = optimizer.init_state(previous.tensors)
        new_tensors, new_state = optimizer.apply(previous.tensors, delta, state)
    except (ValueError, TypeError) as exc:
        raise AggregationError(
            f"server optimizer {server_optimizer!r} with {dict(optimizer_params)}: {exc}"
        ) from exc
    for name, array in new_tensors.items():
        if not np.isfinite(array).all():
            raise AggregationError(
                f"rule {rule!r} + optimizer {server_optimizer!r} gave non-finite values in "
                f"tensor {name!r}; nothing published"
            )
    return new_tensors, new_state


@dataclass(frozen=True)
class RoundConfig:
    """The coordinator's checked inputs of one round (built once by `round_config`)."""

    coordinator: Site
    sites: dict[str, Site]
    policies: dict[str, Policy]  # site id -> its governing policy
    coordinator_policy: Policy | None  # the coordinator's own policy (quarantine_after)
    run_id: str  # effective
    round_index: int
    rule: str
    rule_params: dict[str, Any]
    server_optimizer: str
    server_learning_rate: float
    optimizer_params: dict[str, Any]
    min_sites: int
    protection: str = "none"  # the sites' policies' aggregation.protection


def round_config(
    *,
    coordinator_json: str,
    sites_json: str,
    policies_json: str,
    config_digest: str,
    run_id: str,
    kfp_job_id: str,
    round_index: int,
    rule: str,
    rule_params_json: str,
    server_optimizer: str,
    server_learning_rate: float,
    optimizer_params_json: str,
    min_sites: int,
) -> RoundConfig:
    """Check the inputs before any update is read: the compiled configuration
    (ConfigDigestError), the run id (RunIdError), the rule and optimizer (AggregationError)."""
    check_config(
        config_digest,
        task=f"aggregate round {round_index}",
        coordinator_json=coordinator_json,
        sites_json=sites_json,
        policies_json=policies_json,
    )
    run_name = effective_run_id(run_id, kfp_job_id, f"aggregate round {round_index}")
    sites = {k: Site.parse_obj(v) for k, v in _json_object(sites_json, "sites_json").items()}
    by_id = {
        k: Policy.parse_obj(v) for k, v in _json_object(policies_json, "policies_json").items()
    }
    coordinator = Site.parse_raw(coordinator_json)
    own = by_id.get(coordinator.policy)
    if own is not None and own.aggregation.rule not in (None, rule):
        raise AggregationError(
            f"rule {rule!r}: the coordinator's policy {own.id} sets aggregation.rule "
            f"{own.aggregation.rule!r}; run with --param rule={own.aggregation.rule} or change "
            "the policy"
        )
    try:
        protection = federation_protection({p.id: p.aggregation.protection for p in by_id.values()})
    except ProtectionConflict as exc:
        raise AggregationError(str(exc)) from None
    conflicts = rule_conflicts(protection, rule, server_optimizer, server_learning_rate)
    if conflicts:  # run parameters may differ from what the compiler checked
        raise AggregationError("; ".join(conflicts))
    config = RoundConfig(
        coordinator=coordinator,
        sites=sites,
        policies={sid: by_id[s.policy] for sid, s in sites.items() if s.policy in by_id},
        coordinator_policy=by_id.get(coordinator.policy),
        run_id=run_name,
        round_index=round_index,
        rule=rule,
        rule_params=_json_object(rule_params_json, "rule_params_json"),
        server_optimizer=server_optimizer,
        server_learning_rate=server_learning_rate,
        optimizer_params=_json_object(optimizer_params_json, "optimizer_params_json"),
        min_sites=min_sites,
        protection=protection,
    )
    check_settings(
        rule,
        config.rule_params,
        server_optimizer,
        server_learning_rate,
        config.optimizer_params,
    )
    return config


# round_config's inputs: run takes them, plus the artifact folders.
ROUND_INPUTS = tuple(inspect.signature(round_config).parameters)


def run(
    *,
    coordinator_json: str,
    sites_json: str,
    policies_json: str,
    config_digest: str,
    run_id: str,
    kfp_job_id: str,
    round_index: int,
    rule: str,
    rule_params_json: str,
    server_optimizer: str,
    server_learning_rate: float,
    optimizer_params_json: str,
    min_sites: int,
    previous_model: str,
    updates: Mapping[str, str],
    global_model: str,
    round_report: str,
    answers: Mapping[str, str] | None = None,
    request: str | None = None,
    secagg_json: str = "",
) -> dict[str, Any]:
    """One round on the coordinator; returns the round report (also written as round.json).

    previous_model: the round's starting global_model folder. updates: {site_id: folder of
    that site's export `update` artifact (ref.json)}. global_model / round_report: output
    folders. Raises QuorumError (nothing published) or PublishConflictError (another
    coordinator published this version first; nothing of ours kept).

    With `secagg_json` (aggregation.protection secagg) the updates are masked: `answers`
    {site_id: folder of its unmasking answer} and `request` (the round's request task) come
    with them, and the round unmasks the survivors' sum (`components.aggregation.secure`).
    """
    inputs = locals()
    config = round_config(**{name: inputs[name] for name in ROUND_INPUTS})
    out = _Outputs(global_model, round_report, kfp_job_id)
    if config.protection == "he":
        return _run_encrypted(config, previous_model, updates, out)
    previous = read_global_model(previous_model)
    audit_log = _coordinator_log(config)
    if secagg_json:
        del request  # ordering only: the signed request is read from the coordinator's bucket
        return _run_secure(config, previous, updates, answers or {}, secagg_json, audit_log, out)
    collected, required, screening = _collect(
        config,
        model_spec(previous.tensors),
        previous.version,
        previous.meta.get("health") or {},
        updates,
        audit_log,
    )
    new_tensors, new_state, notes = combine(
        previous,
        collected,
        rule=config.rule,
        rule_params=config.rule_params,
        server_optimizer=config.server_optimizer,
        server_learning_rate=config.server_learning_rate,
        optimizer_params=config.optimizer_params,
        count_caps=count_caps(config),
    )
    report = _round_report(config, previous.version + 1, collected, required, notes, screening)
    model = (new_tensors, new_state)
    return _finish_plain(
        config, previous, collected, report, model, screening.health, audit_log, out
    )


def _run_encrypted(
    config: RoundConfig, previous_model: str, updates: Mapping[str, str], out: _Outputs
) -> dict[str, Any]:
    """One round under protection he (module doc); returns the round report."""
    from components.aggregation.he_weight import total_weight
    from components.he.ckks import HeError
    from components.he.global_model import (
        EncryptedGlobal,
        encrypted_from,
        next_model,
        read_any,
        write_encrypted,
    )
    from components.he.keys import coordinator_context
    from components.he.wire import MODEL_CIPHERTEXT_FILE

    previous = read_any(previous_model)
    spec = previous.spec if isinstance(previous, EncryptedGlobal) else model_spec(previous.tensors)
    coordinator = config.coordinator
    bucket = coordinator_gcs_client(coordinator).bucket(coordinator.object_store.bucket)
    try:
        context = coordinator_context(bucket)
    except HeError as exc:
        raise AggregationError(f"aggregate round {config.round_index}: {exc}") from None
    audit_log = _coordinator_log(config)
    health = previous.meta.get("health") or {}
    collected, required, screening = _collect(
        config, spec, previous.version, health, updates, audit_log, context.context_id
    )
    contributors = sorted(collected.verified)
    weighting = {s: collected.verified[s].manifest.extra["he_weight"] for s in contributors}
    if len(set(weighting.values())) > 1:
        raise AggregationError(
            f"round {config.round_index}: the sites weight their encrypted updates "
            f"differently ({', '.join(f'{s}: {w}' for s, w in weighting.items())}), which "
            "the coordinator cannot correct under he; make export.reveal_num_examples agree "
            "in their policies. Nothing published"
        )
    how = next(iter(weighting.values()))
    counts = {s: collected.verified[s].manifest.num_examples for s in contributors}
    try:
        weight = total_weight(how, counts, count_caps(config))
        bundle = next_model(
            previous,
            context.context,
            context.context_id,
            [collected.verified[s].ciphertext for s in contributors],
            weight,
        )
    except HeError as exc:
        raise AggregationError(f"round {config.round_index}: {exc}; nothing published") from None
    notes = {
        "weights": how,
        "protection": (
            f"he: the coordinator added {len(contributors)} CKKS ciphertexts with the public "
            f"context {context.context_id}, divided by their total weight and added the sum to "
            "the encrypted global model (one ciphertext); the sites decrypt it. Not checked on "
            "the coordinator (it sees no update): norm guard, anomaly scores and quarantine, "
            "count caps, robust rules"
        ),
    }
    report = _round_report(config, previous.version + 1, collected, required, notes, screening)
    report["protection"] = "he"
    meta = _version_meta(config, previous, report, out.kfp_job_id, sha256_hex(bundle))  # type: ignore[arg-type]
    meta["health"] = health
    encrypted = encrypted_from(
        previous,
        context_id=context.context_id,
        version=report["version"],
        bundle=bundle,
        meta=meta,
    )
    return _finish(
        config,
        collected,
        report,
        encrypted.meta,
        (bundle, None),
        audit_log,
        out.round_report,
        lambda: write_encrypted(out.global_model, encrypted),
        model_file=MODEL_CIPHERTEXT_FILE,
    )


def _run_secure(
    config: RoundConfig,
    previous: GlobalModel,
    updates: Mapping[str, str],
    answers: Mapping[str, str],
    secagg_json: str,
    audit_log: Any,
    out: _Outputs,
) -> dict[str, Any]:
    """The secagg round: unmask the sum, then optimizer, report, publish as a plain round."""
    from components.aggregation.secure import secure_round
    from components.secagg.settings import SecAggSettings

    settings = SecAggSettings.from_json(secagg_json)
    bucket = coordinator_gcs_client(config.coordinator).bucket(
        config.coordinator.object_store.bucket
    )
    readers = {sid: site_minio_client(site) for sid, site in sorted(config.sites.items())}
    secure = secure_round(config, previous, updates, answers, settings, bucket, readers)
    notes = dict(secure.notes)
    new_tensors, new_state = apply_server_optimizer(
        previous,
        secure.delta,
        notes,
        rule=config.rule,
        server_optimizer=config.server_optimizer,
        server_learning_rate=config.server_learning_rate,
        optimizer_params=config.optimizer_params,
    )
    collected = Collected(
        abstained=dict(secure.abstained),
        residency=dict(secure.residency),
        consumed=dict(secure.consumed),
    )
    if audit_log is not None:  # one record per site, on the records its masked update rests on
        for site in sorted({*secure.contributors, *secure.abstained}):
            outcome = "summed" if site in secure.consumed else "dropped"
            reason = secure.abstained.get(site)
            audit_log.append(
                "verification",
                {
                    "round": config.round_index,
                    "site": site,
                    "outcome": "accepted" if outcome == "summed" else "abstained",
                    "reason": reason,
                    "summary": f"{site}: masked update {outcome}"
                    + (f" ({reason})" if reason else ""),
                },
                refs=secure.consumed.get(site, []),
            )
    off = {"flagged": {}, "off": notes["protection"]}
    report = _round_report(
        config, previous.version + 1, collected, secure.required, notes, Screening(off, {})
    )
    report["contributors"] = secure.contributors
    report["epsilon"] = dict(sorted(secure.epsilon.items()))
    report["quorum"]["valid"] = len(secure.contributors)
    report["protection"] = "secagg"
    health = previous.meta.get("health") or {}
    model = (new_tensors, new_state)
    return _finish_plain(config, previous, collected, report, model, health, audit_log, out)


@dataclass(frozen=True)
class _Outputs:
    """Where a round writes: the output artifact folders, and the KFP job it runs in."""

    global_model: str
    round_report: str
    kfp_job_id: str


def _finish_plain(
    config: RoundConfig,
    previous: GlobalModel,
    collected: Collected,
    report: dict[str, Any],
    model: tuple[Tensors, Tensors],
    health: dict[str, Any],
    audit_log: Any,
    out: _Outputs,
) -> dict[str, Any]:
    """`_finish` for a plain model `(tensors, optimizer state)` (plain and secagg rounds)."""
    new_tensors, new_state = model
    model_bytes = dump_tensors(new_tensors)
    meta = _version_meta(config, previous, report, out.kfp_job_id, sha256_hex(model_bytes))
    meta["health"] = health
    state_bytes = dump_tensors(new_state) if new_state else None
    return _finish(
        config,
        collected,
        report,
        meta,
        (model_bytes, state_bytes),
        audit_log,
        out.round_report,
        lambda: write_global_model(
            out.global_model, GlobalModel(new_tensors, meta, new_state or None)
        ),
    )


def _finish(
    config: RoundConfig,
    collected: Collected,
    report: dict[str, Any],
    meta: dict[str, Any],
    blobs: tuple[bytes, bytes | None],
    audit_log: Any,
    round_report: str,
    write_model: Callable[[], None],
    model_file: str = MODEL_FILE,
) -> dict[str, Any]:
    """The end of every round: publish `blobs` (model, optimizer state) create-only, record
    the aggregate and the publish in the coordinator's audit log, then write the output
    model (`write_model`, after the publish recorded its URI in `meta`) and round.json."""
    _publish(config, report, meta, *blobs, model_file=model_file)
    if audit_log is not None:
        _audit_round(audit_log, config, collected, report, meta)
    write_model()
    write_json(round_report, ROUND_FILE, report)
    return report


def count_caps(config: RoundConfig) -> dict[str, tuple[int, str] | None]:
    """site -> (the most examples it may claim as a FedAvg weight, where that is declared):
    its site file's data.num_examples.max, else its policy's aggregation.max_num_examples."""
    caps: dict[str, tuple[int, str] | None] = {}
    for site_id, site in config.sites.items():
        declared = site.data.num_examples if site.data else None
        policy = config.policies.get(site_id)
        if declared is not None:
            caps[site_id] = (declared.max, f"{site_id} data.num_examples.max")
        elif policy is not None and policy.aggregation.max_num_examples is not None:
            caps[site_id] = (
                policy.aggregation.max_num_examples,
                f"{policy.id} aggregation.max_num_examples",
            )
        else:
            caps[site_id] = None
    return caps


def guard_norms(config: RoundConfig, collected: Collected) -> dict[str, str]:
    """Plain FedAvg only: move every update beyond the coordinator policy's
    `aggregation.norm_guard_factor` × the round's median norm to `rejected`; returns them."""
    policy = config.coordinator_policy
    factor = policy.aggregation.norm_guard_factor if policy else DEFAULT_NORM_GUARD_FACTOR
    if config.rule != "fedavg" or factor is None:
        return {}
    norms = {s: update_norm(u.tensors) for s, u in collected.verified.items()}
    guarded = norm_guard(norms, factor)
    for site, reason in guarded.items():
        del collected.verified[site]
        collected.rejected[site] = reason
    return guarded


def _coordinator_log(config: RoundConfig) -> Any:
    """The coordinator's audit event log, when its site spec names a signing key (its private
    half, `SIGNING_KEY`, must then be given to the task); else None (no chain)."""
    from components.audit.run_events import coordinator_task_log

    return coordinator_task_log(config.coordinator, config.run_id)


def _audit_verifications(log: Any, config: RoundConfig, collected: Collected) -> None:
    """One record per site: accepted, rejected (with the reason) or abstained; each carries
    the hashes of the site's records it rests on (admission, export)."""
    r = config.round_index
    outcomes = [(s, "accepted", None) for s in collected.verified]
    outcomes += [(s, "rejected", why) for s, why in collected.rejected.items()]
    outcomes += [(s, "abstained", why) for s, why in collected.abstained.items()]
    for site, outcome, reason in sorted(outcomes):
        log.append(
            "verification",
            {
                "round": r,
                "site": site,
                "outcome": outcome,
                "reason": reason,
                "summary": f"{site}: {outcome}" + (f" ({reason})" if reason else ""),
            },
            refs=collected.consumed.get(site, []),
        )


def _audit_round(
    log: Any, config: RoundConfig, collected: Collected, report: dict, meta: dict
) -> None:
    """The aggregate (referencing every site record consumed) and the publish; then a signed
    checkpoint of the coordinator's chain."""
    refs = [h for site in sorted(collected.consumed) for h in collected.consumed[site]]
    version = report["version"]
    log.append(
        "aggregate",
        {
            "round": config.round_index,
            "version": version,
            "rule": config.rule,
            "contributors": report["contributors"],
            "rejected": sorted(report["rejected"]),
            "abstained": sorted(report["abstained"]),
            "summary": f"global model v{version} from {len(report['contributors'])} site(s) "
            f"({config.rule})",
        },
        refs=refs,
    )
    log.append(
        "publish",
        {
            "round": config.round_index,
            "version": version,
            "uri": report.get("published"),
            "model_sha256": meta.get("model_sha256"),
            "summary": f"v{version} published to {report.get('published')}",
        },
    )
    log.checkpoint()


def _collect(
    config: RoundConfig,
    spec: dict[str, tuple[int, ...]],
    version: int,
    health: Mapping[str, Any],
    updates: Mapping[str, str],
    audit_log: Any = None,
    context_id: str | None = None,
) -> tuple[Collected, int, Screening]:
    """Verify every site's update, screen the verified ones for anomalies (quarantined sites
    move to `rejected`), then check the quorum; (collected, required, screening) or
    QuorumError. Under protection he (`context_id`: the public context's) nothing is
    screened: the coordinator sees no update's values."""
    encrypted = config.protection == "he"
    collected = collect_updates(
        updates,
        sites=config.sites,
        policies=config.policies,
        coordinator=config.coordinator,
        run_id=config.run_id,
        round_index=config.round_index,
        spec=spec,
        max_bytes=size_limit(spec),
        client_for=site_minio_client,
        global_version=version,
        rule=config.rule,
        protection=config.protection,
        context_id=context_id,
    )
    policy = config.coordinator_policy
    if encrypted:
        screening = Screening(UNSCREENED_REPORT, dict(health))
    else:
        guard_norms(config, collected)
        screening = screen(
            collected,
            health,
            config.round_index,
            policy.aggregation.quarantine_after if policy else None,
        )
    for site, reason in sorted(collected.rejected.items()):
        log.warning("round %d: rejected %s: %s", config.round_index, site, reason)
    for reason in screening.report["flagged"].values():
        log.warning("round %d: anomalous update: %s", config.round_index, reason)
    if audit_log is not None:  # before the quorum check: a failed round is on record too
        _audit_verifications(audit_log, config, collected)
    contributors = sorted(collected.verified)
    required = check_quorum(
        round_index=config.round_index,
        valid=contributors,
        min_sites=config.min_sites,
        policy_min_sites={s: config.policies[s].aggregation.min_sites for s in contributors},
        rejected=collected.rejected,
        abstained=collected.abstained,
    )
    return collected, required, screening


def _round_report(
    config: RoundConfig,
    version: int,
    collected: Collected,
    required: int,
    notes: dict[str, Any],
    screening: Screening,
) -> dict[str, Any]:
    contributors = sorted(collected.verified)
    return {
        "round": config.round_index,
        "version": version,
        "contributors": contributors,
        "abstained": dict(sorted(collected.abstained.items())),
        "rejected": dict(sorted(collected.rejected.items())),
        "rule": config.rule,
        "rule_params": config.rule_params,
        "server_optimizer": config.server_optimizer,
        "server_learning_rate": config.server_learning_rate,
        "optimizer_params": config.optimizer_params,
        "epsilon": epsilon_summary(collected),
        "quorum": {"required": required, "valid": len(contributors)},
        "residency": dict(sorted(collected.residency.items())),
        "anomaly": screening.report,
        "notes": notes,
    }


def _version_meta(
    config: RoundConfig,
    previous: GlobalModel,
    report: dict[str, Any],
    kfp_job_id: str,
    model_sha256: str,
) -> dict[str, Any]:
    return {
        "version": report["version"],
        "model_name": previous.meta["model_name"],
        "dataset": previous.meta["dataset"],
        "parent": f"v{previous.version}",
        "parent_version": previous.version,
        "parent_uri": previous.meta.get("published"),  # None for the unpublished seeded init
        "run_id": config.run_id,
        "kfp_job_id": kfp_job_id,
        "model_sha256": model_sha256,
        **{k: v for k, v in report.items() if k != "version"},
        # federated_zscore: the published scaling travels with every version (initialize)
        **{k: previous.meta[k] for k in ("feature_scaling",) if k in previous.meta},
    }


def _publish(
    config: RoundConfig,
    report: dict[str, Any],
    meta: dict[str, Any],
    model_bytes: bytes,
    state_bytes: bytes | None,
    model_file: str = MODEL_FILE,
) -> None:
    """Publish the version (create-only, then `latest`); records its URI in report and meta."""
    coordinator, version = config.coordinator, report["version"]
    bucket = coordinator_gcs_client(coordinator).bucket(coordinator.object_store.bucket)
    published = publish_version(
        bucket,
        run_id=config.run_id,
        version=version,
        parent_version=version - 1,
        model_bytes=model_bytes,
        optimizer_bytes=state_bytes,
        meta=meta,
        model_file=model_file,
    )
    report["published"] = published.uri
    meta["published"] = published.uri
    if published.reused:
        report["notes"]["publish"] = (
            f"version {version} was already published with this exact model (a retried or "
            f"resumed round); confirmed, nothing rewritten"
        )
