"""aggregate under `aggregation.protection: secagg`: unmask the sum, never a single update.

Reads the round's signed unmasking request from the coordinator's bucket (the survivors the
`request` task named), re-verifies each survivor's masked update (manifest signature, hash,
policy, version, declared ε: `components.secagg_stages.verify`; the site's admission of the run and its export
record), sums the masked words mod
2^w, removes the masks with the holders' answers (`exchange.coordinator_unmask`: t shares per
site, else the round fails naming the site and the count), dequantizes the sum into the
weighted mean delta (`components.secagg.encode.decode_mean`) and hands it to the server
optimizer. The round report says which sites were summed and dropped, and that robust rules,
the norm guard and anomaly scoring are off (`components.domain.protection`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from components.aggregation.quorum import check_quorum
from components.aggregation.rules import AggregationError
from components.common.global_model import GlobalModel
from components.common.tensors import Tensors
from components.domain.canonical import sha256_hex
from components.domain.protection import OFF_UNDER_PROTECTION, rule_conflicts
from components.privacy.ledger import trust_distributed
from components.privacy.skellam import (
    SkellamError,
    SkellamPlan,
    decode_distributed,
    round_plan,
)
from components.secagg import exchange, wire
from components.secagg.encode import decode_mean
from components.secagg.errors import SecAggError
from components.secagg.keys import verify
from components.secagg.settings import SecAggSettings, unflatten, vector_length
from components.secagg_stages.common import public_key, read_ref, site_bucket
from components.secagg_stages.verify import masked_residency_rule, site_records, verify_masked


@dataclass
class SecureRound:
    delta: Tensors
    contributors: list[str]
    abstained: dict[str, str]
    required: int
    epsilon: dict[str, dict[str, Any]] = field(default_factory=dict)
    residency: dict[str, str] = field(default_factory=dict)
    notes: dict[str, Any] = field(default_factory=dict)
    # site -> hashes of its audit records the round rests on (admission, export)
    consumed: dict[str, list[str]] = field(default_factory=dict)


def secure_round(
    config: Any,
    previous: GlobalModel,
    updates: Mapping[str, str],
    answers: Mapping[str, str],
    settings: SecAggSettings,
    bucket: Any,
    readers: Mapping[str, Any],
) -> SecureRound:
    """The weighted mean delta of the survivors (see the module doc). `config` is aggregate's
    RoundConfig; `bucket` the coordinator's GCS bucket; `readers` {site: minio client}."""
    problems = rule_conflicts("secagg", config.rule, config.server_optimizer)
    if problems:
        raise AggregationError("; ".join(problems))
    r, run_id = config.round_index, config.run_id
    prefix = exchange.round_prefix(run_id, r)
    request = wire.load_request(bucket.blob(prefix + "request.json").download_as_bytes())
    verify(
        request.body(),
        request.signature,
        public_key(config.coordinator),
        f"round {r} unmasking request in the coordinator's bucket",
    )
    if (request.run_id, request.round) != (run_id, r):
        raise SecAggError(
            f"round {r}: the published request is for {request.run_id} {request.round}"
        )
    roster = exchange.round_roster(bucket, run_id, r)
    survivors = sorted(request.survivors)
    stores = {
        sid: site_bucket(config.sites[sid], readers[sid]) for sid in roster.sites if sid in readers
    }
    length = vector_length(previous.tensors)
    total, epsilon, residency, consumed = None, {}, {}, {}
    for sid in survivors:
        site, policy = config.sites[sid], config.policies[sid]
        residency[sid] = masked_residency_rule(site, policy, config.coordinator)
        data = stores[sid].get(run_id, r, "masked.bin")
        ref = read_ref(updates[sid])
        epsilon[sid] = verify_masked(
            ref,
            data,
            site=site,
            policy=policy,
            run_id=run_id,
            round_index=r,
            global_version=previous.version,
        )
        consumed[sid] = site_records(
            readers[sid],
            ref,
            site=site,
            policy=policy,
            run_id=run_id,
            round_index=r,
            manifest_sha256=sha256_hex(data),
            rule=config.rule,
        )
        vector = wire.load_masked(data, length, settings.modulus_bits, f"masked update of {sid}")
        total = vector.copy() if total is None else np.add(total, vector, out=total)
    abstained = {
        sid: str(read_ref(updates[sid]).get("reason") or "dropped")
        for sid in sorted(updates)
        if sid not in survivors
    }
    required = check_quorum(
        round_index=r,
        valid=survivors,
        min_sites=config.min_sites,
        policy_min_sites={s: config.policies[s].aggregation.min_sites for s in survivors},
        rejected={},
        abstained=abstained,
    )
    assert total is not None  # the quorum holds, so some site survived
    summed = exchange.coordinator_unmask(
        bucket, stores, run_id, r, total, survivors, settings.modulus_bits
    )
    ddp = _distributed_plan(config, survivors, length - 1)
    if ddp is None:
        mean, total_weight = decode_mean(summed, len(survivors), settings.quantizer())
    else:  # distributed DP: signed integers, Skellam noise included, weight 1 per site
        try:
            mean = decode_distributed(
                summed, len(survivors), ddp, settings.modulus_bits, settings.num_sites
            )
        except SkellamError as exc:
            raise SecAggError(f"round {r}: {exc}") from None
        total_weight = float(len(survivors))
    answered = {sid: str(read_ref(folder).get("status")) for sid, folder in sorted(answers.items())}
    notes: dict[str, Any] = {
        "protection": f"secagg (SecAgg+): {OFF_UNDER_PROTECTION}",
        "secagg": {
            "summed": survivors,
            "dropped": sorted(request.dropped),
            "excluded": list(roster.excluded),
            "neighbours": len(roster.neighbours[roster.sites[0]]),
            "threshold": roster.threshold,
            "answers": answered,
            "modulus_bits": settings.modulus_bits,
            "norm_bound": settings.norm_bound if ddp is None else ddp.clip,
        },
        "weights": (
            "uniform (weight 1 per site, masked)"
            if settings.weighting == "uniform"
            else f"num_examples, masked: the coordinator learned only their total {total_weight:.0f}"
        ),
    }
    if ddp is not None:
        notes["dp"] = {
            "mode": "distributed",
            "honest_sites": ddp.honest_sites,
            "skellam_mu": ddp.mu,
            "summed_noise_variance": ddp.share * len(survivors),
            "trust": trust_distributed(ddp.honest_sites),
        }
    return SecureRound(
        delta=unflatten(mean, previous.tensors),
        contributors=survivors,
        abstained=abstained,
        required=required,
        epsilon=epsilon,
        residency=residency,
        notes=notes,
        consumed=consumed,
    )


def _distributed_plan(config: Any, survivors: list[str], dim: int) -> SkellamPlan | None:
    """The round plan of distributed DP (the survivors' policies, which the compiler made
    agree), None in local mode; SecAggError when the survivors' policies mix modes."""
    modes = {config.policies[s].dp.mode for s in survivors}
    if modes == {"local"}:
        return None
    if len(modes) > 1:
        raise SecAggError(f"the survivors' policies mix DP modes {sorted(modes)}: not unmasking")
    dp = config.policies[survivors[0]].dp
    return round_plan(dp.epsilon_per_round, dp.delta, dp.min_honest_sites or 0, dim)
