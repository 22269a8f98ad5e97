"""Site-side admission end to end at the task level, against the real S3-compatible server:
a compiled pipeline whose policy for one site was weakened is refused by that site's validate
(its own copy of the policy sits in its bucket), the other sites are admitted and the round's
quorum holds, and the coordinator refuses an update forged for the refusing site."""

from __future__ import annotations

import inspect
import io
import json
import shutil
import uuid
from pathlib import Path

import numpy as np
import pytest
import yaml

from components.aggregation.collect import collect_updates
from components.aggregation.quorum import check_quorum
from components.aggregation.verify import model_spec, size_limit
from components.audit.events import admission_key
from components.audit.records import Record, signature_ok
from components.audit.store import S3Store, read_chain
from components.audit.verify import verify_chain
from components.common.admission import validate_arguments
from components.common.manifest import generate_keypair, update_object_key
from components.common.site_task import call_with_task
from components.datasets.prepare import load_frame, split_federation, table_to_csv_bytes
from components.domain.canonical import canonical_json
from components.domain.models import Policy, Site
from components.validate.entry import validate as validate_entry
from components.validate.executor import run as validate_run
from components.validate.site_admission import OWN_POLICY_KEY
from pipelines.compiler import compile_federation
from pipelines.config.loader import contract_by_name, load_federation
from tests.support.federation import SiteKit, global_tensors, put_update, signed_update

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
WEAK_SITE = "clinic-boston"


@pytest.fixture()
def weakened(tmp_path, minio, monkeypatch):
    """The example federation with unique buckets and fresh keys; `us-health` as compiled is
    weakened (ε per round 3 → 6, and dp_update may go to a coordinator anywhere), while each
    site's bucket holds the site's own (original) policy."""
    suffix = uuid.uuid4().hex[:8]
    shutil.copytree(ROOT / "policies", tmp_path / "policies")
    (tmp_path / "sites").mkdir()
    keys = {}
    for path in sorted((ROOT / "sites").glob("*.yaml")):
        spec = yaml.safe_load(path.read_text())
        if spec["role"] == "site":
            old = spec["object_store"]["bucket"]
            new = f"{old}-{suffix}"
            spec["object_store"]["bucket"] = new
            for name in ("uri", "holdout_uri"):
                spec["data"][name] = spec["data"][name].replace(f"//{old}/", f"//{new}/")
            private, public = generate_keypair()
            keys[spec["id"]] = private
            spec["signing"] = {"public_key": public}
            monkeypatch.setenv(
                f"FEDPIPE_SIGNING_KEY__{spec['id'].upper().replace('-', '_')}", private
            )
        (tmp_path / "sites" / path.name).write_text(yaml.safe_dump(spec))
    own = load_federation(tmp_path / "sites", tmp_path / "policies")
    policy = yaml.safe_load((tmp_path / "policies" / "us-health.yaml").read_text())
    policy["dp"]["epsilon_per_round"] = 6.0
    policy["rules"]["dp_update"].append({"roles": ["coordinator"]})
    (tmp_path / "policies" / "us-health.yaml").write_text(yaml.safe_dump(policy))
    compiled_fed = load_federation(tmp_path / "sites", tmp_path / "policies")
    frame = load_frame(contract_by_name("breast_cancer"))
    split = split_federation(
        frame, contract_by_name("breast_cancer"), list(own.sites), np.random.default_rng(3)
    )
    for site_id, site in own.sites.items():
        bucket = site.object_store.bucket
        minio.make_bucket(bucket)
        data = table_to_csv_bytes(split.sites[site_id].train)
        key = site.data.uri.split(f"//{bucket}/", 1)[1]
        minio.put_object(bucket, key, io.BytesIO(data), len(data))
        text = canonical_json(own.policy_of(site_id)).encode()
        minio.put_object(bucket, OWN_POLICY_KEY, io.BytesIO(text), len(text))
    return own, compiled_fed, keys


def task_arguments(compiled_yaml: str, task: str, params: dict) -> dict:
    """A task's arguments as KFP resolves them: constants, and pipeline inputs (their compiled
    defaults unless `params` sets them)."""
    spec = next(yaml.safe_load_all(compiled_yaml))
    defaults = {
        k: v.get("defaultValue") for k, v in spec["root"]["inputDefinitions"]["parameters"].items()
    }
    out = {}
    for name, value in spec["root"]["dag"]["tasks"][task]["inputs"]["parameters"].items():
        if "runtimeValue" in value:
            out[name] = value["runtimeValue"]["constant"]
        else:
            pipeline_input = value["componentInputParameter"]
            out[name] = params.get(pipeline_input, defaults[pipeline_input])
    return out


def run_validate(compiled_yaml, site_id, run_id, tmp_path, minio):
    args = task_arguments(
        compiled_yaml, f"validate-{site_id}", {"run_id": run_id, "noise_multiplier": 1.3}
    )
    types = inspect.signature(validate_entry).parameters
    args = {k: int(v) if types[k].annotation is int else v for k, v in args.items()}
    args["summary"] = str(tmp_path / site_id / "summary")
    kwargs, _ = validate_arguments(args)
    summary = call_with_task(validate_run, {**kwargs, "client_factory": lambda: minio})
    return summary


def test_weakened_policy_refused_by_its_site_others_go_on_and_forged_update_refused(
    weakened, tmp_path, minio
):
    own, compiled_fed, keys = weakened
    compiled = compile_federation(compiled_fed, rounds=2)
    run_id = f"adm-{uuid.uuid4().hex[:8]}"
    summaries = {
        site_id: run_validate(compiled.pipeline_yaml, site_id, run_id, tmp_path, minio)
        for site_id in own.sites
    }
    refused = summaries[WEAK_SITE]
    assert refused["passed"] is False
    assert refused["reason"] == (
        f"site {WEAK_SITE} abstains: {WEAK_SITE} refused the run: "
        "dp.epsilon_per_round: the pipeline allows 6, the site's own policy 3; "
        "rules.dp_update[2]: destination `roles=coordinator` is not allowed by the site's own "
        "policy (which allows `roles=coordinator, jurisdictions=US`, `roles=coordinator, "
        "jurisdictions=EU`)"
    )
    for site_id in ("hospital-berlin", "hospital-paris"):
        assert summaries[site_id]["passed"] is True, summaries[site_id]

    # the signed admission record: in the site's chain and under its fixed key
    site = own.sites[WEAK_SITE]
    store = S3Store(minio, site.object_store.bucket)
    weak_policy = compiled_fed.policy_of(WEAK_SITE)
    from components.domain.canonical import policy_digest

    record = Record.from_json(
        store.get(admission_key(run_id, WEAK_SITE, policy_digest(weak_policy)))
    )
    assert signature_ok(record.payload(), record.signature, site.signing.public_key)
    assert record.body["decision"] == "refuse" and len(record.body["reasons"]) == 2
    assert (
        record.body["own_policy"]["source"] == f"s3://{site.object_store.bucket}/{OWN_POLICY_KEY}"
    )
    chain = read_chain(store, run_id, f"site/{WEAK_SITE}", site.signing.public_key)
    assert [r.kind for r in chain.records] == ["admission", "validation"]
    assert verify_chain(chain) == []
    # the summary names both records by hash (initialize references them); the fixed-key
    # admission record is the same record as the chain's
    assert refused["audit"] == {
        "admission": chain.records[0].hash,
        "validation": chain.records[1].hash,
    }
    assert record.hash == chain.records[0].hash

    # round 1 at the coordinator: Berlin and Paris export; an update is forged for Boston
    # (signed with its key, as a compromised export or a replay would be) without admission
    refs = {}
    for site_id in own.sites:
        kit = SiteKit(compiled_fed.sites[site_id], compiled_fed.policy_of(site_id), keys[site_id])
        tensors = {k: np.full(v.shape, 0.01, np.float32) for k, v in global_tensors().items()}
        npz, manifest = signed_update(kit, tensors, run_id=run_id, round_index=1)
        key = update_object_key(run_id, 1, site_id)
        put_update(minio, kit, npz, manifest, key=key, ensure_bucket=False)
        folder = tmp_path / "refs" / site_id
        folder.mkdir(parents=True)
        (folder / "ref.json").write_text(
            json.dumps(
                {
                    "status": "exported",
                    "site_id": site_id,
                    "bucket": kit.site.object_store.bucket,
                    "key": key + ".npz",
                    "manifest_key": key + ".manifest.json",
                    "manifest": json.loads(manifest),
                    "reason": None,
                }
            )
        )
        refs[site_id] = str(folder)
    spec = model_spec(global_tensors())
    coordinator = compiled_fed.coordinator
    collected = collect_updates(
        refs,
        sites=dict(compiled_fed.sites),
        policies={s: compiled_fed.policy_of(s) for s in compiled_fed.sites},
        coordinator=coordinator,
        run_id=run_id,
        round_index=1,
        spec=spec,
        max_bytes=size_limit(spec),
        client_for=lambda site: minio,
        global_version=0,
        rule="fedavg",
    )
    assert sorted(collected.verified) == ["hospital-berlin", "hospital-paris"]
    assert collected.rejected[WEAK_SITE].startswith(
        "the site refused this run: dp.epsilon_per_round: the pipeline allows 6"
    ), collected.rejected[WEAK_SITE]
    assert len(collected.consumed["hospital-berlin"]) == 1  # its admission record
    required = check_quorum(
        round_index=1,
        valid=sorted(collected.verified),
        min_sites=2,
        policy_min_sites={s: 2 for s in collected.verified},
        rejected=collected.rejected,
        abstained=collected.abstained,
    )
    assert required == 2

    # a rule the sites did not admit is refused too
    other = collect_updates(
        {"hospital-berlin": refs["hospital-berlin"]},
        sites=dict(compiled_fed.sites),
        policies={s: compiled_fed.policy_of(s) for s in compiled_fed.sites},
        coordinator=coordinator,
        run_id=run_id,
        round_index=1,
        spec=spec,
        max_bytes=size_limit(spec),
        client_for=lambda site: minio,
        global_version=0,
        rule="median",
    )
    assert (
        "the site admitted aggregation rule 'fedavg', this round applies 'median'"
        in (other.rejected["hospital-berlin"])
    )


def test_no_own_policy_means_refusal(weakened, tmp_path, minio):
    own, compiled_fed, _ = weakened
    compiled = compile_federation(own, rounds=1)
    site = own.sites["hospital-paris"]
    minio.remove_object(site.object_store.bucket, OWN_POLICY_KEY)
    run_id = f"adm-{uuid.uuid4().hex[:8]}"
    summary = run_validate(compiled.pipeline_yaml, site.id, run_id, tmp_path, minio)
    assert summary["passed"] is False
    assert (
        f"no own policy found at s3://{site.object_store.bucket}/{OWN_POLICY_KEY}"
        in (summary["reason"])
    )
    berlin = run_validate(compiled.pipeline_yaml, "hospital-berlin", run_id, tmp_path, minio)
    assert berlin["passed"] is True


def test_own_policy_from_the_configmap_variable_wins(weakened, tmp_path, minio, monkeypatch):
    own, _, _ = weakened
    compiled = compile_federation(own, rounds=1)
    strict = json.loads(canonical_json(own.policy_of("hospital-berlin")))
    strict["dp"]["epsilon_per_round"] = 1.0
    monkeypatch.setenv(
        "FEDPIPE_OWN_POLICY__HOSPITAL_BERLIN", yaml.safe_dump(Policy.parse_obj(strict).dict())
    )
    run_id = f"adm-{uuid.uuid4().hex[:8]}"
    summary = run_validate(compiled.pipeline_yaml, "hospital-berlin", run_id, tmp_path, minio)
    assert (
        "dp.epsilon_per_round: the pipeline allows 3, the site's own policy 1"
        in (summary["reason"])
    )
    assert isinstance(own.sites["hospital-berlin"], Site)


def test_the_image_the_pod_runs_is_checked_not_only_the_one_the_spec_names(
    weakened, tmp_path, minio, monkeypatch
):
    """The spec names an allowed digest; the pod runs another (the local runner's variable
    here, the pod's status on Kubernetes): the site refuses naming both; the same image is
    admitted."""
    own, _, _ = weakened
    allowed = "sha256:" + "ab" * 32
    compiled = compile_federation(own, rounds=1, image=f"ghcr.io/fedpipe/fedpipe@{allowed}")
    strict = json.loads(canonical_json(own.policy_of("hospital-berlin")))
    strict["admission"]["image_digests"] = [allowed]
    monkeypatch.setenv("FEDPIPE_OWN_POLICY__HOSPITAL_BERLIN", json.dumps(strict))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    other = "sha256:" + "cd" * 32
    monkeypatch.setenv("FEDPIPE_POD_IMAGE", f"ghcr.io/fedpipe/fedpipe@{other}")
    run_id = f"adm-{uuid.uuid4().hex[:8]}"
    summary = run_validate(compiled.pipeline_yaml, "hospital-berlin", run_id, tmp_path, minio)
    assert summary["passed"] is False
    assert (
        f"the image this task runs in has digest {other} (from FEDPIPE_POD_IMAGE (the local "
        "runner)), which is not in the site's allowlist" in summary["reason"]
    )
    monkeypatch.setenv("FEDPIPE_POD_IMAGE", f"ghcr.io/fedpipe/fedpipe@{allowed}")
    run_id = f"adm-{uuid.uuid4().hex[:8]}"
    summary = run_validate(compiled.pipeline_yaml, "hospital-berlin", run_id, tmp_path, minio)
    assert summary["passed"] is True, summary
