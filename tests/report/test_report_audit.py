"""report appends the sha256 of what it wrote to the coordinator's audit chain (GCS emulator)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from components.audit.store import GcsStore, read_chain
from components.audit.verify import run_story, verify_chain
from components.common.config_digest import config_digest
from components.common.manifest import generate_keypair
from components.domain.canonical import canonical_json, sha256_hex
from components.domain.models import Site
from components.report.executor import run
from tests.support.federation import make_coordinator, unique
from tests.support.report_fixtures import evaluations, round_reports

pytestmark = pytest.mark.integration


def _artifacts(tmp_path: Path) -> tuple[dict, dict]:
    reports, evals = {}, {}
    for rep in round_reports():
        folder = tmp_path / f"round-{rep['round']}"
        folder.mkdir()
        (folder / "round.json").write_text(json.dumps(rep))
        reports[rep["round"]] = str(folder)
    for ev in evaluations():
        folder = tmp_path / f"eval-{ev['round']}-{ev['site_id']}"
        folder.mkdir()
        (folder / "metrics.json").write_text(json.dumps(ev))
        evals.setdefault(ev["round"], {})[ev["site_id"]] = str(folder)
    return reports, evals


def test_the_report_digests_are_signed_into_the_coordinators_chain(gcs, tmp_path, monkeypatch):
    bucket = gcs.create_bucket(unique("coord"))
    private, public = generate_keypair()
    body = json.loads(canonical_json(make_coordinator(bucket.name)))
    coordinator = Site.parse_obj({**body, "signing": {"public_key": public}})
    monkeypatch.setenv("FEDPIPE_SIGNING_KEY__COORDINATOR", private)
    reports, evals = _artifacts(tmp_path)
    text = canonical_json(coordinator)
    out = tmp_path / "out"
    kwargs = dict(
        round_reports=reports,
        evaluations=evals,
        html=str(out / "report.html"),
        markdown=str(out / "report.md"),
        summary=str(out / "summary"),
        run_id="run-r",
        coordinator_json=text,
    )
    with pytest.raises(ValueError, match="report: coordinator_json are not the compiled"):
        run(**kwargs, config_digest="0" * 64)
    run(**kwargs, config_digest=config_digest(coordinator_json=text))
    chain = read_chain(GcsStore(bucket), "run-r", "coordinator", public)
    assert verify_chain(chain) == [] and chain.checkpoints[-1].count == 1
    (record,) = chain.records
    assert record.kind == "report" and record.body["final_version"] == 2
    assert record.body["sha256"] == {
        "html": sha256_hex((out / "report.html").read_bytes()),
        "markdown": sha256_hex((out / "report.md").read_bytes()),
        "summary.json": sha256_hex((out / "summary" / "summary.json").read_bytes()),
    }
    # on its own the report is not a run's account: initialize and the publish are missing
    assert run_story(chain)[0].startswith("coordinator: no initialize record")
