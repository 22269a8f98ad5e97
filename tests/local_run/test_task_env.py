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
