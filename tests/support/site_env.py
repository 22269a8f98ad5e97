"""A real site for train/export tests: the example site + policy, its own fresh bucket on the
S3-compatible test server, its breast-cancer share, a signing key, a global model folder."""

from __future__ import annotations

import copy
import dataclasses
import json
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from components.common.global_model import GlobalModel, write_global_model
from components.common.manifest import generate_keypair
from components.common.secrets import secret_env_name
from components.datasets.prepare import load_frame, split_federation, table_to_csv_bytes
from components.domain.canonical import canonical_json, policy_digest
from components.domain.models import Policy, Site
from components.train.models import initial_weights
from pipelines.config.loader import contract_by_name
from tests.support.paths import REPO

SITE_IDS = ("hospital-berlin", "hospital-paris", "clinic-boston")


def _deep_update(base: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _deep_update(out[key], value)
        else:
            out[key] = value
    return out


def federation_split(seed: int = 0):
    """breast_cancer split IID over the three example sites + pooled test set (B1's splitter)."""
    return split_federation(
        load_frame(contract_by_name("breast_cancer")),
        contract_by_name("breast_cancer"),
        list(SITE_IDS),
        np.random.default_rng(seed),
    )


@dataclass
class SiteEnv:
    site_id: str
    site: Site
    policy: Policy
    site_json: str
    policy_json: str
    policy_digest: str
    bucket: str
    client: Any
    private_pem: str
    public_pem: str
    folder: Path

    def with_policy(self, changes: dict[str, Any]) -> SiteEnv:
        """The same site and bucket under a changed policy (new JSON and digest)."""
        policy = Policy.parse_obj(_deep_update(self.policy.dict(), changes))
        return dataclasses.replace(
            self,
            policy=policy,
            policy_json=canonical_json(policy),
            policy_digest=policy_digest(policy),
        )

    def factory(self):
        return lambda: self.client

    def common(self, run_id: str, round_index: int) -> dict[str, Any]:
        """The common per-site task inputs (components/CONTRACT.md)."""
        return {
            "site_id": self.site_id,
            "policy_digest": self.policy_digest,
            "data_snapshot": self.site.data.snapshot,
            "site_json": self.site_json,
            "policy_json": self.policy_json,
            "run_id": run_id,
            "kfp_job_id": "job-unused",
            "round_index": round_index,
        }

    def write_global(self, tensors: dict[str, np.ndarray], version: int, name: str) -> str:
        path = self.folder / name
        write_global_model(
            path,
            GlobalModel(
                tensors,
                {
                    "version": version,
                    "model_name": "logreg",
                    "dataset": "breast_cancer",
                    "parent": None,
                },
            ),
        )
        return str(path)

    def write_validation(self, passed: bool = True, reason: str | None = None) -> str:
        path = self.folder / "validation"
        path.mkdir(parents=True, exist_ok=True)
        (path / "summary.json").write_text(
            json.dumps({"site_id": self.site_id, "passed": passed, "reason": reason})
        )
        return str(path)


def make_site_env(
    minio,
    tmp_path: Path,
    monkeypatch,
    *,
    site_id: str = "hospital-berlin",
    policy_changes: dict[str, Any] | None = None,
    train_frame: pd.DataFrame | None = None,
    object_lock: bool = True,
) -> SiteEnv:
    """The example `site_id` with a fresh bucket (object lock on by default), its training
    table uploaded, the signing key in env, `eu-health` (with `policy_changes`)."""
    site_raw = yaml.safe_load((REPO / "sites" / f"{site_id}.yaml").read_text())
    policy_raw = yaml.safe_load((REPO / "policies" / f"{site_raw['policy']}.yaml").read_text())
    policy = Policy.parse_obj(_deep_update(policy_raw, policy_changes or {}))
    bucket = f"t{uuid.uuid4().hex[:16]}-fl"
    private_pem, public_pem = generate_keypair()
    site = Site.parse_obj(
        _deep_update(
            site_raw,
            {
                "object_store": {"bucket": bucket},
                "data": {
                    "uri": f"s3://{bucket}/data/train.csv",
                    "holdout_uri": f"s3://{bucket}/data/holdout.csv",
                },
                "signing": {"public_key": public_pem},
            },
        )
    )
    minio.make_bucket(bucket, object_lock=object_lock)
    if train_frame is None:
        train_frame = federation_split().sites[site_id].train
    data = table_to_csv_bytes(train_frame)
    import io

    minio.put_object(bucket, "data/train.csv", io.BytesIO(data), len(data))
    monkeypatch.setenv(secret_env_name(site_id, "SIGNING_KEY"), private_pem)
    folder = tmp_path / site_id
    folder.mkdir(parents=True, exist_ok=True)
    return SiteEnv(
        site_id=site_id,
        site=site,
        policy=policy,
        site_json=canonical_json(site),
        policy_json=canonical_json(policy),
        policy_digest=policy_digest(policy),
        bucket=bucket,
        client=minio,
        private_pem=private_pem,
        public_pem=public_pem,
        folder=folder,
    )


def initial_global(env: SiteEnv, seed: int = 0) -> str:
    return env.write_global(initial_weights("logreg", 30, 2, seed), 0, "global-v0")
