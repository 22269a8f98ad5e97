"""`fedpipe upload` / `fedpipe schedule` against a local KFP v2beta1 REST server (no cluster).

The server parses every request body with the `kfp-server-api` models and records it; the
assertions are on what kfp 2.13's client really sent.
"""

import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from pipelines.cli import main
from pipelines.kfp_ops.digest import pipeline_digest_of, version_name_for
from pipelines.localstack.kfp_api import KfpApiServer
from tests.support.paths import REPO

pytestmark = pytest.mark.integration

PIPELINE = "federated-training"


def _compile(out: Path, snapshot: str | None = None) -> Path:
    """`fedpipe compile` of the example federation; `snapshot` changes hospital-paris's site file."""
    from pipelines.compiler import compile_federation
    from pipelines.config.loader import load_federation

    sites = REPO / "sites"
    if snapshot is not None:
        sites = out.parent / f"sites-{snapshot}"
        shutil.copytree(REPO / "sites", sites)
        paris = sites / "hospital-paris.yaml"
        text = paris.read_text()
        assert 'snapshot: "2026-11-01"' in text
        paris.write_text(text.replace('snapshot: "2026-11-01"', f'snapshot: "{snapshot}"'))
    compiled = compile_federation(load_federation(sites, REPO / "policies"), rounds=1)
    out.write_text(compiled.pipeline_yaml)
    return out


@pytest.fixture(scope="module")
def packages(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The example federation's YAML, and the same with one site's data snapshot changed."""
    tmp = tmp_path_factory.mktemp("compiled")
    return _compile(tmp / "example.yaml"), _compile(tmp / "changed.yaml", "2026-12-01")


@pytest.fixture()
def kfp_host(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[KfpApiServer]:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))  # no ~/.config/kfp/context.json
    with KfpApiServer() as server:
        yield server


def _upload(server: KfpApiServer, package: Path) -> int:
    return main(["upload", "--host", server.url, "--package", str(package)])


def test_upload_same_digest_is_a_noop_and_changed_sites_add_a_version(
    kfp_host: KfpApiServer, packages: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    example, changed = packages
    digest = pipeline_digest_of(example.read_text())
    assert digest.startswith("sha256:")
    name = version_name_for(digest)  # sha256-<hex>: a valid Kubernetes object name
    assert re.fullmatch(r"sha256-[0-9a-f]{64}", name)

    assert _upload(kfp_host, example) == 0
    assert "created" in capsys.readouterr().out
    assert _upload(kfp_host, example) == 0
    assert "already there (no-op)" in capsys.readouterr().out

    assert kfp_host.calls("GET", "/healthz")  # kfp.Client() asks when no namespace is set
    created = kfp_host.calls("POST", "/pipelines")
    assert [r.path for r in created] == [
        "/apis/v2beta1/pipelines",
        "/apis/v2beta1/pipelines/upload_version",
    ]
    assert created[0].body.display_name == PIPELINE
    assert "Residency-checked federated training" in created[0].body.description
    [pipeline_id] = kfp_host.state.pipelines
    assert created[1].query["pipelineid"] == pipeline_id
    assert created[1].query["name"] == name
    assert (
        created[1].query["description"].startswith(f"fedpipe pipeline {PIPELINE}, digest {digest}")
    )
    assert created[1].upload == example.read_bytes()
    versions = list(kfp_host.state.versions.values())
    assert [v.display_name for v in versions] == [name]
    # the UI shows the root parameters with their defaults and descriptions
    spec = versions[0].pipeline_spec["pipeline_spec"]  # wrapped with its platform spec
    params = spec["root"]["inputDefinitions"]["parameters"]
    assert params["resume"]["defaultValue"] is False
    assert params["learning_rate"]["defaultValue"] == 0.05
    assert all(p.get("description") for p in params.values())

    new_digest = pipeline_digest_of(changed.read_text())
    assert new_digest != digest
    assert _upload(kfp_host, changed) == 0
    assert len(kfp_host.state.pipelines) == 1
    assert sorted(v.display_name for v in kfp_host.state.versions.values()) == sorted(
        [name, version_name_for(new_digest)]
    )
    assert len(kfp_host.calls("POST", "/pipelines/upload_version")) == 2


def test_upload_refuses_a_yaml_without_digest(
    kfp_host: KfpApiServer,
    packages: tuple[Path, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    package = tmp_path / "no-digest.yaml"
    package.write_text(packages[0].read_text().replace("digest: sha256:", "checksum: sha256:"))
    assert _upload(kfp_host, package) == 2
    assert "pipelineInfo.description has no 'digest" in capsys.readouterr().err
    assert kfp_host.requests == []  # refused before connecting


def _schedule(server: KfpApiServer, *extra: str) -> int:
    return main(["schedule", "--host", server.url, "--pipeline-name", PIPELINE, *extra])


def test_five_field_cron_is_refused_with_the_six_field_form(
    kfp_host: KfpApiServer, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _schedule(kfp_host, "--version", "abc", "--cron", "0 * * * *") == 2
    err = capsys.readouterr().err
    assert "did you mean '0 0 * * * *'" in err
    assert kfp_host.requests == []  # refused before talking to the host


def test_schedule_sends_one_at_a_time_no_catchup_and_resume(
    kfp_host: KfpApiServer, packages: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    package = packages[0]
    digest = pipeline_digest_of(package.read_text())
    assert _upload(kfp_host, package) == 0

    bare_prefix = digest.removeprefix("sha256:")[:12]  # as a user would copy it
    args = ["--version", bare_prefix, "--cron", "0 0 2 * * *", "--param", "local_epochs=2"]
    assert _schedule(kfp_host, *args) == 0
    [sent] = kfp_host.calls("POST", "/recurringruns")
    run = sent.body  # a kfp_server_api.V2beta1RecurringRun, parsed by the server
    assert run.display_name == f"{PIPELINE}-recurring"
    assert run.trigger.cron_schedule.cron == "0 0 2 * * *"
    assert run.trigger.periodic_schedule is None
    assert int(run.max_concurrency) == 1
    assert run.no_catchup is True
    assert run.mode == "ENABLE"
    assert run.runtime_config.parameters == {"local_epochs": 2, "resume": True}
    version = next(iter(kfp_host.state.versions.values()))
    assert run.pipeline_version_reference.pipeline_version_id == version.pipeline_version_id
    assert run.pipeline_version_reference.pipeline_id == version.pipeline_id
    [experiment] = kfp_host.state.experiments.values()
    assert experiment.display_name == "fedpipe"
    assert run.experiment_id == experiment.experiment_id

    # scheduling again updates: the old recurring run is replaced, not duplicated
    again = ["--version", digest, "--cron", "0 30 1 * * *", "--max-concurrency", "2", "--catchup"]
    assert _schedule(kfp_host, *again) == 0
    assert "replaced" in capsys.readouterr().out
    [current] = kfp_host.state.recurring_runs.values()
    assert current.trigger.cron_schedule.cron == "0 30 1 * * *"
    assert int(current.max_concurrency) == 2
    assert current.no_catchup is False
    assert len(kfp_host.state.experiments) == 1
    assert len(kfp_host.calls("DELETE", "/recurringruns/")) == 1


def test_failed_replacement_keeps_the_old_recurring_run(
    kfp_host: KfpApiServer, packages: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    assert _upload(kfp_host, packages[0]) == 0
    digest = pipeline_digest_of(packages[0].read_text())
    assert _schedule(kfp_host, "--version", digest, "--cron", "0 0 2 * * *") == 0
    [old] = kfp_host.state.recurring_runs.values()

    kfp_host.fail_once["POST /apis/v2beta1/recurringruns"] = 500
    assert _schedule(kfp_host, "--version", digest, "--cron", "0 0 3 * * *") == 2
    assert "answered 500" in capsys.readouterr().err
    assert list(kfp_host.state.recurring_runs.values()) == [old]
    assert old.mode == "ENABLE"  # disabled for the swap, enabled again after the failure
    assert [r.path.rsplit(":", 1)[1] for r in kfp_host.calls("POST", "/recurringruns/")] == [
        "disable",
        "enable",
    ]
    assert old.trigger.cron_schedule.cron == "0 0 2 * * *"


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--param", "epochs=2"], "the pipeline has no such parameter; it has: batch_size"),
        (["--param", "local_epochs=two"], "--param local_epochs='two': not a valid NUMBER_INTEGER"),
        (["--param", "resume=false"], "a recurring run always resumes"),
        (["--max-concurrency", "0"], "--max-concurrency 0: must be 1..10"),
    ],
)
def test_schedule_refuses_bad_parameters(
    kfp_host: KfpApiServer,
    packages: tuple[Path, Path],
    capsys: pytest.CaptureFixture[str],
    extra: list[str],
    message: str,
) -> None:
    package = packages[0]
    assert _upload(kfp_host, package) == 0
    digest = pipeline_digest_of(package.read_text())
    assert _schedule(kfp_host, "--version", digest, "--cron", "0 0 2 * * *", *extra) == 2
    assert message in capsys.readouterr().err
    assert kfp_host.state.recurring_runs == {}


def test_schedule_names_missing_pipeline_and_version(
    kfp_host: KfpApiServer, packages: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    assert _schedule(kfp_host, "--version", "abc", "--cron", "0 0 2 * * *") == 2
    assert f"no pipeline named {PIPELINE!r}" in capsys.readouterr().err
    assert _upload(kfp_host, packages[0]) == 0
    assert _upload(kfp_host, packages[1]) == 0
    assert _schedule(kfp_host, "--version", "ffff", "--cron", "0 0 2 * * *") == 2
    assert "has no version 'sha256-ffff'" in capsys.readouterr().err
    assert _schedule(kfp_host, "--version", "sha256:", "--cron", "0 0 2 * * *") == 2
    assert "is ambiguous" in capsys.readouterr().err


def test_server_refuses_unknown_fields(kfp_host: KfpApiServer) -> None:
    import json
    import urllib.error
    import urllib.request

    req = urllib.request.Request(
        kfp_host.url + "/apis/v2beta1/experiments",
        data=json.dumps({"display_name": "x", "colour": "red"}).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(req)
    assert err.value.code == 400
    assert "unknown field(s) ['colour']" in err.value.read().decode()
