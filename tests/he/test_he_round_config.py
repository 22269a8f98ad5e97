"""The aggregate task refuses, before reading anything, run parameters that cannot run on
ciphertexts (a run may override the compiled rule or server optimizer)."""

from __future__ import annotations

import json

import pytest

from components.aggregation.executor import AggregationError, round_config
from components.common.config_digest import config_digest
from components.domain.canonical import canonical_json
from tests.support.federation import make_coordinator, make_policy


def _config(protection: str, **overrides):
    policy = make_policy().dict()
    policy["aggregation"]["protection"] = protection
    texts = {
        "coordinator_json": canonical_json(make_coordinator("coord-bucket")),
        "sites_json": "{}",
        "policies_json": json.dumps({"eu-health": policy}),
    }
    args = {
        **texts,
        "config_digest": config_digest(**texts),
        "run_id": "run-he",
        "kfp_job_id": "job",
        "round_index": 1,
        "rule": "fedavg",
        "rule_params_json": "{}",
        "server_optimizer": "fedavg",
        "server_learning_rate": 1.0,
        "optimizer_params_json": "{}",
        "min_sites": 2,
        **overrides,
    }
    return round_config(**args)


def test_he_rounds_take_plain_fedavg_only():
    assert _config("he").protection == "he"
    assert _config("none", rule="median").protection == "none"
    with pytest.raises(AggregationError, match="rule 'median' cannot run with aggregation"):
        _config("he", rule="median")
    with pytest.raises(AggregationError, match="server_optimizer 'fedadam'.*plain FedAvg"):
        _config("he", server_optimizer="fedadam", server_learning_rate=0.1)
    with pytest.raises(AggregationError, match="server_learning_rate 0.5"):
        _config("he", server_learning_rate=0.5)
