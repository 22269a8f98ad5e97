"""Test helpers shared by tests/datasets, tests/validate, tests/evaluate: site/policy JSON."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd

from components.common.manifest import generate_keypair

_PUBLIC_KEY = generate_keypair()[1]


def site_json(
    site_id: str,
    *,
    dataset: str = "breast_cancer",
    train_uri: str | None = None,
    holdout_uri: str | None = None,
    bucket: str | None = None,
    endpoint: str = "minio.example.svc:9000",
) -> str:
    """A valid `Site` JSON for `site_id` (role site) whose data lives at the given URIs."""
    bucket = bucket or f"{site_id}-fl"
    body: dict[str, Any] = {
        "apiVersion": "fedpipe.dev/v1",
        "kind": "Site",
        "id": site_id,
        "role": "site",
        "deployment": "on-prem",
        "provider": "on-prem",
        "region": "de-berlin",
        "jurisdiction": "DE",
        "policy": "eu-health",
        "placement": {"node_selector": {"fedpipe.dev/site": site_id}},
        "data": {
            "contract": dataset,
            "uri": train_uri or f"s3://{bucket}/data/train.csv",
            "holdout_uri": holdout_uri or f"s3://{bucket}/data/holdout.csv",
            "snapshot": "2026-11-01",
        },
        "object_store": {
            "type": "s3",
            "endpoint": endpoint,
            "bucket": bucket,
            "secret_name": f"{site_id}-object-store",
            "secure": True,
        },
        "signing": {"public_key": _PUBLIC_KEY},
    }
    return json.dumps(body)


def policy_json(min_cell_count: int = 5, reveal_num_examples: bool = True) -> str:
    """A valid `Policy` JSON (eu-health-like) with the given confusion-matrix minimum."""
    eu = [{"roles": ["coordinator"], "jurisdictions": ["EU"]}]
    body = {
        "apiVersion": "fedpipe.dev/v1",
        "kind": "ResidencyPolicy",
        "id": "eu-health",
        "description": "test policy",
        "rules": {
            "raw_data": [],
            "local_model": [],
            "validation_summary": eu,
            "dp_update": eu,
            "global_model": [],
            "metrics": eu,
        },
        "dp": {
            "epsilon_per_round": 3.0,
            "lifetime_epsilon": 50.0,
            "delta": 1.0e-5,
            "allow_dp_off": True,
        },
        "aggregation": {"min_sites": 2},
        "export": {"reveal_num_examples": reveal_num_examples},
        "encryption": {"at_rest": "sse-s3", "in_transit": "tls"},
        "retention": {"days": 30, "object_lock": True},
        "metrics": {"min_cell_count": min_cell_count},
    }
    return json.dumps(body)


_NUMBER = re.compile(r"-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?")


def numbers_in(text: str) -> Iterator[float]:
    """Every number written anywhere in `text` (JSON numbers and digits inside strings)."""
    for match in _NUMBER.finditer(text):
        yield float(match.group())


def raw_values(frame: pd.DataFrame) -> set[float]:
    """The distinctive raw cell values of a table: every non-integer numeric cell.

    Integers are left out: counts in a summary are integers, and the label set and small
    integers are public. For breast-cancer features nearly every cell is non-integer.
    """
    values = pd.to_numeric(pd.Series(frame.to_numpy().ravel()), errors="coerce").dropna()
    return {float(v) for v in values if float(v) != round(float(v))}


def leaked_values(artifact_text: str, frame: pd.DataFrame) -> set[float]:
    """Raw cell values of `frame` that appear as numbers in `artifact_text`.

    Matching: a number in the text equal to a raw value, or equal to it rounded to the
    text number's own number of decimals (so 17.99 is found as "17.99" or "17.990").
    """
    raw = raw_values(frame)
    found: set[float] = set()
    for match in _NUMBER.finditer(artifact_text):
        token = match.group()
        value = float(token)
        if value in raw:
            found.add(value)
            continue
        if "." in token and "e" not in token.lower():
            decimals = len(token.split(".")[1])
            if decimals >= 2:
                found |= {r for r in raw if round(r, decimals) == value}
    return found


def write_csv(path: Path, frame: pd.DataFrame) -> str:
    """Write `frame` as CSV at `path`; returns its file:// URI."""
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(path, index=False)
    return path.resolve().as_uri()


def policy_digest_input(policy_json_text: str) -> dict[str, str]:
    """{"policy_digest": ...} a compiled task would carry for this policy (the sha256 of the
    raw text where it does not parse, so the task refuses it)."""
    from components.domain.canonical import policy_digest, sha256_hex
    from components.domain.models import Policy

    try:
        return {"policy_digest": policy_digest(Policy.parse_raw(policy_json_text))}
    except ValueError:
        return {"policy_digest": sha256_hex(policy_json_text)}


def contract_json(name: str = "breast_cancer") -> str:
    """The canonical JSON of a bundled example contract (what validate gets compiled in)."""
    from components.domain.canonical import canonical_json
    from pipelines.config.loader import contract_by_name

    return canonical_json(contract_by_name(name))


def train_settings(**overrides: Any) -> dict[str, Any]:
    """The run settings the site-stage tests train and export with (breast_cancer, logreg,
    DP-SGD with Poisson sampling, seed 3); `overrides` replace any of them."""
    settings: dict[str, Any] = {
        "dataset": "breast_cancer",
        "contract_json": contract_json("breast_cancer"),
        "model_name": "logreg",
        "local_epochs": 1,
        "batch_size": 16,
        "learning_rate": 0.5,
        "noise_multiplier": 1.5,
        "l2_norm_clip": 1.0,
        "dp_enabled": True,
        "dp_sampling": "poisson",
        "seed": 3,
    }
    return {**settings, **overrides}


def read_object(minio: Any, bucket: str, key: str) -> bytes:
    """The bytes of `s3://<bucket>/<key>` through a minio client (connection released)."""
    response = minio.get_object(bucket, key)
    try:
        return response.read()
    finally:
        response.close()
        response.release_conn()
