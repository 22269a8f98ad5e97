"""A local task gets its placement's secrets (as its pod would) and no other site's."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipelines.local_run.task_env import secret_files, task_environment

PLATFORM = {
    "platforms": {
        "kubernetes": {
            "deploymentSpec": {
                "executors": {
                    "exec-export-lab-r1": {
                        "secretAsEnv": [
                            {
                                "secretName": "lab-object-store",
                                "keyToEnv": [
                                    {
                                        "envVar": "FEDPIPE_S3_ACCESS_KEY__LAB",
                                        "secretKey": "access-key",
                                    },
                                    {
                                        "envVar": "FEDPIPE_SIGNING_KEY__LAB",
                                        "secretKey": "signing-key",
                                    },
                                ],
                            }
                        ]
                    },
                    "exec-report": {},
                }
            }
        }
    }
}


def test_secret_files_follow_the_platform_spec(tmp_path: Path) -> None:
    files = secret_files(PLATFORM, {"lab-object-store": "lab"}, tmp_path)
    assert files == {
        "exec-export-lab-r1": {
            "FEDPIPE_S3_ACCESS_KEY__LAB": str(tmp_path / "lab" / "s3_access_key"),
            "FEDPIPE_SIGNING_KEY__LAB": str(tmp_path / "lab" / "signing_key"),
        },
        "exec-report": {},
    }
    with pytest.raises(ValueError, match="exec-export-lab-r1: Secret 'lab-object-store'"):
        secret_files(PLATFORM, {}, tmp_path)


def test_task_environment_hides_other_sites_and_the_secrets_folder(tmp_path: Path) -> None:
    (tmp_path / "key").write_text("mine")
    base = {
        "PATH": "/bin",
        "FEDPIPE_SECRETS_DIR": "/all",
        "FEDPIPE_S3_ACCESS_KEY__OTHER": "theirs",
        "FEDPIPE_S3_SECRET_KEY__LAB": "from-env",
    }
    all_vars = {
        "FEDPIPE_S3_ACCESS_KEY__LAB",
        "FEDPIPE_S3_SECRET_KEY__LAB",
        "FEDPIPE_S3_ACCESS_KEY__OTHER",
    }
    own = {
        "FEDPIPE_S3_ACCESS_KEY__LAB": str(tmp_path / "key"),
        "FEDPIPE_S3_SECRET_KEY__LAB": str(tmp_path / "missing"),
    }
    assert task_environment(base, own, all_vars) == {
        "PATH": "/bin",
        "FEDPIPE_S3_ACCESS_KEY__LAB": "mine",
        "FEDPIPE_S3_SECRET_KEY__LAB": "from-env",  # no file: the value given as env stays
    }
    assert task_environment(base, {}, all_vars) == {"PATH": "/bin"}


def test_each_local_task_is_told_the_image_its_pod_would_run(tmp_path, monkeypatch):
    """What validate's admission checks against the site's image allowlist locally: the
    container image of the task's compiled executor (components.validate.running_image)."""
    from kfp import local

    from pipelines.local_run.parallel import run_pipeline_parallel
    from tests.support.toy_components import image_pipeline

    monkeypatch.setenv("FEDPIPE_POD_IMAGE", "inherited@sha256:" + "cd" * 32)  # not passed on
    local.init(local.SubprocessRunner(use_venv=False), pipeline_root=str(tmp_path / "root"))
    out = tmp_path / "image.txt"
    ok = run_pipeline_parallel(
        image_pipeline.pipeline_spec,
        {"out": str(out)},
        str(tmp_path / "root"),
        tmp_path / "logs",
        1,
        isolation="process",
    )
    assert ok, (tmp_path / "logs").glob("*.log")
    assert out.read_text() == "r.example/fedpipe@sha256:" + "ab" * 32
