"""The aggregate executor's audit events on real servers: one verification record per site
(accepted, rejected with its reason, abstained), then aggregate and publish, in the
coordinator's chain in its GCS bucket; the records reference the site records they consumed,
a rejected update's export included, so the chains cross-check."""

from __future__ import annotations

import pytest

from components.aggregation.executor import run
from components.audit.run_events import (
    INITIALIZE,
    coordinator_task_log,
    initialize_body,
    record_refs,
)
from components.audit.store import GcsStore, S3Store, read_chain
from components.audit.verify import COORDINATOR, verify_run
from components.common.config_digest import config_digest
from components.common.global_model import GlobalModel, write_global_model
from components.common.manifest import generate_keypair
from components.domain.canonical import canonical_json
from components.domain.models import Signing
from tests.support.federation import (
    abstain,
    constant_update,
    export,
    global_tensors,
    make_coordinator,
    new_site,
    policies_json,
    sites_json,
    unique,
)

pytestmark = pytest.mark.integration


def test_coordinator_chain_records_every_outcome_and_references_site_records(
    monkeypatch, s3_server, minio, gcs, tmp_path
):
    monkeypatch.setenv("FEDPIPE_S3_ACCESS_KEY", s3_server.access_key)
    monkeypatch.setenv("FEDPIPE_S3_SECRET_KEY", s3_server.secret_key)
    monkeypatch.delenv("FEDPIPE_ENDPOINT_OVERRIDES", raising=False)
    bucket = gcs.create_bucket(unique("coord"))
    private, public = generate_keypair()
    coordinator = make_coordinator(bucket.name).copy(update={"signing": Signing(public_key=public)})
    monkeypatch.setenv("FEDPIPE_SIGNING_KEY__COORDINATOR", private)
    kits = [new_site(n, endpoint=s3_server.endpoint) for n in ("a", "b", "c", "d")]
    run_id = unique("audit")
    previous = tmp_path / "v0"
    meta = {"version": 0, "model_name": "mlp", "dataset": "digits", "parent": None}
    write_global_model(previous, GlobalModel(global_tensors(), meta, None))
    updates = {
        k.id: export(
            minio,
            k,
            constant_update(0.1),
            tmp_path / k.id,
            run_id=run_id,
            round_index=1,
            audited=True,
            admitted=k.id != "c",  # c's update is forged: its site never admitted the run
        )
        for k in kits[:3]
    }
    updates["d"] = abstain(kits[3], tmp_path / "d", "validation failed")
    texts = {
        "coordinator_json": canonical_json(coordinator),
        "sites_json": sites_json(kits),
        "policies_json": policies_json(kits),
    }
    # the run's start, as initialize writes it (verify_run wants the chain to begin there),
    # referencing the admission records of a and b that their validation summaries name
    records = {
        k.id: {
            "admission": next(
                r.hash
                for r in read_chain(
                    S3Store(minio, k.site.object_store.bucket),
                    run_id,
                    f"site/{k.id}",
                    k.site.signing.public_key,
                ).records
                if r.kind == "admission"
            )
        }
        for k in kits[:2]
    }
    start = initialize_body(
        passed=["a", "b", "c"],
        abstained={"d": "validation failed"},
        min_sites=2,
        version=0,
        records=records,
    )
    coordinator_task_log(coordinator, run_id).append(INITIALIZE, start, record_refs(records))
    report = run(
        **texts,
        config_digest=config_digest(**texts),
        run_id=run_id,
        kfp_job_id="job-1",
        round_index=1,
        rule="fedavg",
        rule_params_json="{}",
        server_optimizer="fedavg",
        server_learning_rate=1.0,
        optimizer_params_json="{}",
        min_sites=2,
        previous_model=str(previous),
        updates=updates,
        global_model=str(tmp_path / "out" / "global_model"),
        round_report=str(tmp_path / "out" / "round_report"),
    )
    assert report["contributors"] == ["a", "b"]
    assert report["rejected"]["c"].startswith("no admission record at s3://")

    chains = {
        f"site/{k.id}": read_chain(
            S3Store(minio, k.site.object_store.bucket),
            run_id,
            f"site/{k.id}",
            k.site.signing.public_key,
        )
        for k in kits[:3]
    }
    chains[COORDINATOR] = read_chain(GcsStore(bucket), run_id, COORDINATOR, public)
    coord = chains[COORDINATOR].records
    assert [(r.kind, r.body.get("site"), r.body.get("outcome")) for r in coord] == [
        ("initialize", None, None),
        ("verification", "a", "accepted"),
        ("verification", "b", "accepted"),
        ("verification", "c", "rejected"),
        ("verification", "d", "abstained"),
        ("aggregate", None, None),
        ("publish", None, None),
    ]
    assert "no admission record" in coord[3].body["reason"]
    assert coord[4].body["reason"] == "validation failed"
    exports = {
        name: next(r for r in c.records if r.kind == "export")
        for name, c in chains.items()
        if name != COORDINATOR
    }
    assert exports["site/c"].hash in coord[3].refs  # the rejected update was accounted for
    assert {e.hash for e in exports.values()} <= set(coord[5].refs)
    assert chains[COORDINATOR].checkpoints[-1].count == 7
    verdict = verify_run(chains)
    assert verdict.problems == []

    # a site record the coordinator does not reference is caught
    kit = kits[0]
    extra = export(
        minio,
        kit,
        constant_update(0.2),
        tmp_path / "again",
        run_id=run_id,
        round_index=2,
        audited=True,
    )
    assert extra
    chains["site/a"] = read_chain(
        S3Store(minio, kit.site.object_store.bucket), run_id, "site/a", kit.site.signing.public_key
    )
    problems = verify_run(chains).problems
    assert problems == [
        "site/a: record #2 (export, round 2) is not referenced by the coordinator chain (an "
        "update the coordinator did not account for)"
    ]
