"""A SecAgg+ federation driven through the stage executors (site and coordinator) against the
real test object stores: fresh Ed25519 keys per site, policies asking `protection: secagg`,
local models written as train writes them. Each step is one call, so tests can drop sites,
forge what the coordinator hands the sites, or skip answers."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np

from components.common.artifact_files import META_FILE, MODEL_FILE
from components.common.global_model import GlobalModel, write_global_model
from components.common.manifest import generate_keypair
from components.common.secrets import secret_env_name
from components.common.site_task import SiteTask, parse_site_task
from components.common.tensors import dump_tensors
from components.domain.canonical import canonical_dumps, canonical_json, policy_digest
from components.domain.models import Policy, Site
from components.export.masked import run_masked
from components.secagg.encode import encode_weighted
from components.secagg.settings import SecAggSettings, flatten
from components.secagg_stages import coordinator as coord
from components.secagg_stages import executor as site_steps
from tests.support.federation import (
    SiteKit,
    admit,
    global_tensors,
    make_coordinator,
    make_policy,
    make_site,
    unique,
)

DIGEST = "test-config-digest"


def secagg_policy(policy: Policy | None = None, **changes: Any) -> Policy:
    """`policy` (default: the test EU policy, DP off allowed) asking secagg, plain HTTP."""
    body = (policy or make_policy(allow_dp_off=True)).dict()
    body["aggregation"]["protection"] = "secagg"
    body["encryption"]["in_transit"] = "none"
    body.update(changes)
    return Policy.parse_obj(body)


@dataclass
class Round:
    """What one round left: folders of each step's artifacts."""

    updates: dict[str, str] = field(default_factory=dict)
    request: str = ""
    answers: dict[str, str] = field(default_factory=dict)
    quantized: dict[str, np.ndarray] = field(default_factory=dict)


@dataclass
class SecAggFederation:
    minio: Any
    gcs_bucket: Any
    tmp: Path
    sites: dict[str, Site]
    policies: dict[str, Policy]
    coordinator: Site
    coordinator_pem: str
    settings: SecAggSettings
    run_id: str
    rounds: int
    roster: str = ""
    relay: str = ""
    validations: dict[str, str] = field(default_factory=dict)
    shares: dict[str, str] = field(default_factory=dict)

    # ---- inputs the tasks get -------------------------------------------------------------
    @property
    def sites_json(self) -> str:
        return canonical_dumps({s: site.dict() for s, site in sorted(self.sites.items())})

    @property
    def policies_json(self) -> str:
        return canonical_dumps({p.id: p.dict() for p in self.policies.values()})

    @property
    def coordinator_json(self) -> str:
        return canonical_json(self.coordinator)

    def task(self, site_id: str, round_index: int = 1) -> SiteTask:
        site = self.sites[site_id]
        policy = self.policies[site_id]
        return parse_site_task(
            site_id=site_id,
            policy_digest=policy_digest(policy),
            site_json=canonical_json(site),
            policy_json=canonical_json(policy),
            run_id=self.run_id,
            kfp_job_id="job",
            round_index=round_index,
            rounds=self.rounds,
        )

    def folder(self, *parts: str) -> str:
        path = self.tmp.joinpath(*parts)
        path.mkdir(parents=True, exist_ok=True)
        return str(path)

    def factory(self):
        return lambda: self.minio

    def readers(self) -> dict[str, Any]:
        return {s: self.minio for s in self.sites}

    def fanin(self) -> dict[str, Any]:
        return {
            "coordinator_json": self.coordinator_json,
            "sites_json": self.sites_json,
            "policies_json": self.policies_json,
            "config_digest": DIGEST,
            "run_id": self.run_id,
            "kfp_job_id": "job",
            "secagg_json": self.settings.to_json(),
            "readers": self.readers(),
            "gcs": SimpleNamespace(bucket=lambda name: self.gcs_bucket),
        }

    # ---- once per run -----------------------------------------------------------------------
    def setup(self, validated: dict[str, bool] | None = None) -> None:
        """advertise (every site whose validation passed) → roster → shares → relay."""
        self.setup_keys_and_roster(validated)
        for sid in self.sites:
            self.shares[sid] = self.folder("shares", sid)
            site_steps.run_shares(
                self.task(sid), coordinator_json=self.coordinator_json,
                sites_json=self.sites_json, validation=self.validations[sid], roster=self.roster,
                shares=self.shares[sid], client_factory=self.factory(),
            )  # fmt: skip
        self.relay = self.folder("relay")
        coord.run_relay(**self.fanin(), rounds=self.rounds, shares=self.shares, relay=self.relay)

    def setup_keys_and_roster(self, validated: dict[str, bool] | None = None) -> None:
        """validate's summary per site; a site that passed advertises (as validate does)."""
        for sid in self.sites:
            passed = (validated or {}).get(sid, True)
            self.validations[sid] = self.folder("validation", sid)
            Path(self.validations[sid], "summary.json").write_text(
                json.dumps({"site_id": sid, "passed": passed, "reason": None if passed else "x"})
            )
            if passed:
                site_steps.advertise(self.task(sid), self.factory())
        self.roster = self.folder("roster")
        coord.run_roster(
            **self.fanin(), rounds=self.rounds, validations=self.validations, roster=self.roster
        )

    # ---- one round ----------------------------------------------------------------------------
    def global_model(self, round_index: int, tensors: dict[str, np.ndarray]) -> str:
        folder = self.folder(f"global-r{round_index}")
        meta = {
            "version": round_index - 1,
            "model_name": "mlp",
            "dataset": "digits",
            "parent": None,
        }
        write_global_model(folder, GlobalModel(tensors, meta))
        return folder

    def local_model(self, sid: str, r: int, tensors: dict[str, np.ndarray] | None) -> str:
        """train's local model folder (`None`: the site abstained in training)."""
        folder = self.folder(f"local-r{r}", sid)
        meta: dict[str, Any] = {"site_id": sid, "run_id": self.run_id, "round": r}
        if tensors is None:
            meta.update(status="abstained", reason=f"site {sid} abstains: test")
        else:
            meta.update(
                status="trained", global_version=r - 1, num_examples=100, model_name="mlp",
                dataset="digits", epsilon=None, epsilon_pld=None, delta=1e-5,
                dp={"enabled": False},
            )  # fmt: skip
            Path(folder, MODEL_FILE).write_bytes(dump_tensors(tensors))
        Path(folder, META_FILE).write_text(json.dumps(meta))
        return folder

    def mask(self, r: int, global_folder: str, local: dict[str, str]) -> Round:
        out = Round()
        for sid in self.sites:
            out.updates[sid] = self.folder(f"update-r{r}", sid)
            run_masked(
                self.task(sid, r), local_model=local[sid], global_model=global_folder,
                relay=self.relay, secagg_json=self.settings.to_json(),
                coordinator_json=self.coordinator_json, sites_json=self.sites_json,
                update=out.updates[sid], client_factory=self.factory(), audit=True,
            )  # fmt: skip
        return out

    def request(self, r: int, global_folder: str, out: Round, min_sites: int = 2) -> dict:
        out.request = self.folder(f"request-r{r}")
        return coord.run_request(
            **self.fanin(), round_index=r, min_sites=min_sites, previous_model=global_folder,
            updates=out.updates, request=out.request,
        )  # fmt: skip

    def answer(self, sid: str, r: int, out: Round) -> dict:
        out.answers[sid] = self.folder(f"answer-r{r}", sid)
        return site_steps.run_answer(
            self.task(sid, r), coordinator_json=self.coordinator_json,
            sites_json=self.sites_json, update=out.updates[sid], request=out.request,
            answer=out.answers[sid], client_factory=self.factory(),
        )  # fmt: skip

    def round_config(self, r: int, min_sites: int = 2) -> SimpleNamespace:
        return SimpleNamespace(
            rule="fedavg", server_optimizer="fedavg", round_index=r, run_id=self.run_id,
            coordinator=self.coordinator, sites=self.sites, policies=self.policies,
            min_sites=min_sites,
        )  # fmt: skip

    def plain_quantized(self, delta: dict[str, np.ndarray], weight: float = 1.0) -> np.ndarray:
        """What the site masks, unmasked: [weight * clip(delta), weight] in fixed point."""
        q = self.settings.quantizer()
        return encode_weighted(flatten(delta), weight, self.settings.norm_bound, q)


def make_federation(
    minio: Any,
    gcs: Any,
    endpoint: str,
    tmp: Path,
    monkeypatch: Any,
    site_policies: dict[str, Policy],
    *,
    rounds: int = 1,
    run_id: str = "run-secagg",
) -> SecAggFederation:
    """Fresh buckets and keys for `site_policies` {site id: its policy (secagg)}."""
    sites = {}
    for sid, policy in sorted(site_policies.items()):
        private_pem, public_pem = generate_keypair()
        bucket = unique(sid)
        minio.make_bucket(bucket)
        sites[sid] = make_site(sid, public_pem, bucket=bucket, endpoint=endpoint, policy=policy.id)
        monkeypatch.setenv(secret_env_name(sid, "SIGNING_KEY"), private_pem)
        # the site admitted the run (validate's signed admission record), as aggregate checks
        admit(minio, SiteKit(sites[sid], policy, private_pem), run_id, rule="fedavg")
    coordinator_pem, coordinator_public = generate_keypair()
    body = make_coordinator(unique("coord")).dict()
    body["signing"] = {"public_key": coordinator_public}
    coordinator = Site.parse_obj(body)
    monkeypatch.setenv(secret_env_name("coordinator", "SIGNING_KEY"), coordinator_pem)
    monkeypatch.setattr(coord, "check_config", lambda *a, **k: None)
    return SecAggFederation(
        minio=minio,
        gcs_bucket=gcs.create_bucket(coordinator.object_store.bucket),
        tmp=tmp,
        sites=sites,
        policies=dict(site_policies),
        coordinator=coordinator,
        coordinator_pem=coordinator_pem,
        settings=SecAggSettings(num_sites=len(sites)),
        run_id=run_id,
        rounds=rounds,
    )


def deltas(ids: list[str], seed: int = 0) -> dict[str, dict[str, np.ndarray]]:
    """A seeded small update per site (the shapes of `global_tensors`)."""
    rng = np.random.default_rng(seed)
    return {
        s: {k: rng.normal(scale=0.1, size=v.shape).astype(np.float32) for k, v in
            global_tensors().items()}
        for s in ids
    }  # fmt: skip
