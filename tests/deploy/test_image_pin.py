"""`fedpipe compile --image`: digest-pinned references, refused tags, registry rewrite keeps the
digest, and the digest is part of the pipeline version."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from pipelines.cli import main
from pipelines.placement.image_ref import ImageRefError, parse_image_ref, require_pinned
from tests.support.paths import REPO

DIGEST_A = "sha256:" + "a1" * 32
DIGEST_B = "sha256:" + "b2" * 32
PINNED = f"ghcr.io/x/fedpipe@{DIGEST_A}"


def _executor_images(out: Path) -> dict[str, str]:
    spec = next(yaml.safe_load_all((out / "federated-training.yaml").read_text()))
    return {n: e["container"]["image"] for n, e in spec["deploymentSpec"]["executors"].items()}


def _compile(out: Path, *extra: str, sites: Path = REPO / "sites") -> int:
    return main(
        [
            "compile",
            "--sites", str(sites),
            "--policies", str(REPO / "policies"),
            "--out", str(out),
            *extra,
        ]
    )  # fmt: skip


@pytest.mark.parametrize(
    ("ref", "expected"),
    [
        ("ghcr.io/x/fedpipe:latest", ("ghcr.io", "x/fedpipe", "latest", None)),
        (PINNED, ("ghcr.io", "x/fedpipe", None, DIGEST_A)),
        (f"localhost:5000/f:1.0@{DIGEST_B}", ("localhost:5000", "f", "1.0", DIGEST_B)),
        ("python:3.11-slim", ("", "python", "3.11-slim", None)),
    ],
)
def test_parse_image_ref(ref: str, expected: tuple):
    r = parse_image_ref(ref)
    assert (r.registry, r.repository, r.tag, r.digest) == expected


@pytest.mark.parametrize(
    "ref", ["", "ghcr.io/x/fedpipe@sha256:abc", "ghcr.io/X/Fed", "a b", "x/y:bad/tag"]
)
def test_malformed_references_are_refused(ref: str):
    with pytest.raises(ImageRefError):
        parse_image_ref(ref)


def test_require_pinned():
    assert require_pinned(f" {PINNED} ") == PINNED
    with pytest.raises(ImageRefError, match="names no digest"):
        require_pinned("ghcr.io/x/fedpipe:latest")
    assert require_pinned("ghcr.io/x/fedpipe:latest", allow_mutable=True)


def test_mutable_tag_is_refused_with_the_reason(tmp_path: Path, capsys):
    out = tmp_path / "out"
    assert _compile(out, "--image", "ghcr.io/x/fedpipe:latest") == 2
    err = capsys.readouterr().err
    assert "--image: image 'ghcr.io/x/fedpipe:latest' names no digest" in err
    assert "--allow-mutable-image" in err
    assert not out.exists()


def test_allow_mutable_image_accepts_the_tag(tmp_path: Path):
    out = tmp_path / "out"
    assert _compile(out, "--image", "ghcr.io/x/fedpipe:latest", "--allow-mutable-image") == 0
    assert set(_executor_images(out).values()) == {"ghcr.io/x/fedpipe:latest"}


def test_digest_in_every_executor_registry_rewrite_keeps_it_and_versions_differ(
    tmp_path: Path,
):
    sites = tmp_path / "sites"
    shutil.copytree(REPO / "sites", sites)
    berlin = sites / "hospital-berlin.yaml"
    berlin.write_text(berlin.read_text() + "image_registry: registry.berlin.example/mirror\n")
    out_a, out_b = tmp_path / "a", tmp_path / "b"
    assert _compile(out_a, "--image", PINNED, sites=sites) == 0
    assert _compile(out_b, "--image", f"ghcr.io/x/fedpipe@{DIGEST_B}", sites=sites) == 0
    images = _executor_images(out_a)
    berlin_images = {i for n, i in images.items() if "hospital-berlin" in n}
    others = {i for n, i in images.items() if "hospital-berlin" not in n}
    assert berlin_images == {f"registry.berlin.example/mirror/x/fedpipe@{DIGEST_A}"}
    assert others == {PINNED}
    assert len(images) == 15  # 4 stages × 3 sites + initialize, aggregate, report
    version = [
        yaml.safe_load((o / "residency-report.json").read_text())["pipeline_version"]
        for o in (out_a, out_b)
    ]
    assert version[0] != version[1]
