"""The Dockerfile, parsed: same lock files as `make install`, digest-pinned base, non-root,
nothing but the venv in the final stage; hadolint; `make image` without docker/podman."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.support.paths import REPO

HADOLINT = REPO / ".venv-tools" / "bin" / "hadolint"


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def args(self, op: str) -> list[str]:
        return [a for o, a in self.instructions if o == op]


def parse_dockerfile(text: str) -> tuple[dict[str, str], list[Stage]]:
    """(global ARG defaults, stages) of a Dockerfile: continuations joined, comments dropped."""
    logical, current = [], ""
    for line in text.splitlines():
        if not current and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if current and line.lstrip().startswith("#"):
            continue
        current += line.rstrip()[:-1] + " " if line.rstrip().endswith("\\") else line
        if not line.rstrip().endswith("\\"):
            logical.append(current.strip())
            current = ""
    global_args: dict[str, str] = {}
    stages: list[Stage] = []
    for entry in logical:
        op, _, rest = entry.partition(" ")
        op, rest = op.upper(), rest.strip()
        if op == "FROM":
            words = rest.split()
            base = re.sub(r"\$\{(\w+)\}", lambda m: global_args[m.group(1)], words[0])
            name = words[2] if len(words) == 3 and words[1].upper() == "AS" else None
            stages.append(Stage(base, name))
        elif not stages:
            assert op == "ARG", f"only ARG may precede FROM, got {op}"
            key, _, value = rest.partition("=")
            global_args[key] = value
        else:
            stages[-1].instructions.append((op, rest))
    return global_args, stages


def lock_installs(commands: list[str]) -> list[tuple[str, bool]]:
    """(lock file, --no-deps?) of every `pip install -r pipelines/locks/...` in `commands`."""
    found = []
    for command in commands:
        for part in re.split(r"&&|;", command):
            words = shlex.split(part)
            if "pip" not in " ".join(words[:1]) or "install" not in words:
                continue
            for i, w in enumerate(words):
                if w == "-r" and words[i + 1].startswith("pipelines/locks/"):
                    found.append((words[i + 1], "--no-deps" in words))
    return found


def make_install_venv_recipe() -> list[str]:
    """The recipe lines of the Makefile rule that builds .venv ($(STAMP))."""
    lines = (REPO / "Makefile").read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("$(STAMP):"))
    recipe = []
    for line in lines[start + 1 :]:
        if not line.startswith("\t"):
            break
        recipe.append(line.strip().replace("$(VENV)/bin/pip", "pip"))
    return recipe


@pytest.fixture(scope="module")
def dockerfile() -> tuple[dict[str, str], list[Stage]]:
    return parse_dockerfile((REPO / "Dockerfile").read_text())


def test_base_is_python_3_11_slim_pinned_by_digest(dockerfile):
    _, stages = dockerfile
    assert len(stages) == 2 and stages[0].name == "builder"
    for stage in stages:
        assert re.fullmatch(r"python:3\.11-slim@sha256:[0-9a-f]{64}", stage.base), stage.base


def test_installs_the_same_lock_files_as_make_install(dockerfile):
    _, (builder, final) = dockerfile
    image = lock_installs(builder.args("RUN"))
    make = lock_installs(make_install_venv_recipe())
    assert (
        image
        == make
        == [
            ("pipelines/locks/runtime.txt", False),
            ("pipelines/locks/no-deps.txt", True),
        ]
    )
    # every lock file is installed into the image, except the test servers' (tools venv)
    locks = {f"pipelines/locks/{p.name}" for p in (REPO / "pipelines/locks").glob("*.txt")}
    assert locks - {f for f, _ in image} == {"pipelines/locks/tools.txt"}
    assert (
        "pipelines/locks/tools.txt" in (REPO / "Makefile").read_text().split("$(TOOLS_STAMP):")[1]
    )
    assert any("--no-deps --no-build-isolation ." in r for r in builder.args("RUN"))
    assert lock_installs(final.args("RUN")) == []


def test_final_stage_runs_as_non_root_with_only_the_venv(dockerfile):
    _, (builder, final) = dockerfile
    (user,) = final.args("USER")
    uid = user.split(":")[0]
    assert uid.isdigit() and int(uid) != 0  # numeric: runAsNonRoot can check it
    assert final.args("COPY") == ["--from=builder /opt/fedpipe /opt/fedpipe"]
    runs = " ".join(final.args("RUN"))
    for banned in ("apt-get", "pip", "pip3", "gcc", "build-essential", "make"):
        assert not re.search(rf"(^|[\s/]){banned}(\s|$)", runs), banned
    # compilers only in the builder; pip there keeps no cache
    assert "build-essential" in " ".join(builder.args("RUN"))
    assert any("PIP_NO_CACHE_DIR=1" in e for e in builder.args("ENV"))
    labels = " ".join(final.args("LABEL"))
    for key in ("source", "revision", "version"):
        assert f"org.opencontainers.image.{key}=" in labels


def test_dockerignore_sends_only_the_package():
    lines = [
        line.strip()
        for line in (REPO / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert lines[0] == "*"
    assert {line[1:] for line in lines if line.startswith("!")} == {
        "pyproject.toml", "README.md", "components/", "pipelines/"
    }  # fmt: skip


def test_hadolint_passes():
    assert HADOLINT.exists(), f"{HADOLINT} missing: run `make install` (tools venv)"
    result = subprocess.run(
        [str(HADOLINT), str(REPO / "Dockerfile")], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def _bin_dir(tmp_path: Path, docker_script: str | None = None) -> Path:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("sed", "git"):
        found = shutil.which(tool)
        assert found, tool
        (bin_dir / tool).symlink_to(found)
    if docker_script is not None:
        (bin_dir / "docker").write_text(docker_script)
        (bin_dir / "docker").chmod(0o755)
    return bin_dir


def _make_image(bin_dir: Path) -> subprocess.CompletedProcess:
    make = shutil.which("make")
    assert make
    env = {**os.environ, "PATH": str(bin_dir)}
    return subprocess.run(
        [make, "-s", "image"], cwd=REPO, env=env, capture_output=True, text=True, check=False
    )


def test_make_image_says_when_neither_docker_nor_podman_exists(tmp_path):
    result = _make_image(_bin_dir(tmp_path))
    assert result.returncode != 0
    assert "make image: neither docker nor podman is installed" in result.stderr


def test_make_image_says_when_the_engine_cannot_reach_its_daemon(tmp_path):
    fake = '#!/bin/sh\n[ "$1" = info ] && exit 1\necho built "$@"\n'
    result = _make_image(_bin_dir(tmp_path, fake))
    assert result.returncode != 0
    assert "is installed but cannot reach its daemon/service" in result.stderr
    ok = '#!/bin/sh\necho docker "$@"\n'
    (tmp_path / "2").mkdir()
    result = _make_image(_bin_dir(tmp_path / "2", ok))
    assert result.returncode == 0, result.stderr
    assert "docker build --build-arg VERSION=0.1.0 --build-arg REVISION=" in result.stdout
    assert result.stdout.rstrip().endswith("-t fedpipe:0.1.0 .")
