"""Container image references: digest-pinned or refused (pure).

A reference is `[registry/]repository[:tag][@sha256:<64 hex>]`. A tag can be moved to other
bytes after the pipeline was compiled; a digest cannot, so `fedpipe compile --image` wants one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")
_REPOSITORY = re.compile(r"^[a-z0-9]+(?:[._-][a-z0-9]+|__)*(?:/[a-z0-9]+(?:[._-][a-z0-9]+)*)*$")
_TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")


class ImageRefError(ValueError):
    """A malformed or (without permission) mutable image reference."""


@dataclass(frozen=True)
class ImageRef:
    """A parsed reference: `registry` ("" when implicit), `repository`, optional tag/digest."""

    registry: str
    repository: str
    tag: str | None
    digest: str | None

    @property
    def pinned(self) -> bool:
        """True when the reference names a digest (immutable content)."""
        return self.digest is not None


def parse_image_ref(ref: str) -> ImageRef:
    """Split `ref`; ImageRefError names what is wrong (empty, bad digest, bad tag, bad path)."""
    text = ref.strip()
    if not text or any(c.isspace() for c in text):
        raise ImageRefError(f"image {ref!r}: empty or contains whitespace")
    rest, at, digest = text.partition("@")
    if at and not _DIGEST.match(digest):
        raise ImageRefError(
            f"image {ref!r}: digest {digest!r} is not sha256:<64 lowercase hex digits>"
        )
    first, slash, tail = rest.partition("/")
    registry = ""
    if slash and ("." in first or ":" in first or first == "localhost"):
        registry, rest = first, tail
    name, colon, tag = rest.rpartition(":") if ":" in rest else (rest, "", "")
    if colon and not _TAG.match(tag):
        raise ImageRefError(f"image {ref!r}: tag {tag!r} is not a valid tag")
    if not _REPOSITORY.match(name):
        raise ImageRefError(f"image {ref!r}: repository {name!r} is not a valid path")
    return ImageRef(registry, name, tag or None, digest if at else None)


def require_pinned(ref: str, allow_mutable: bool = False) -> str:
    """`ref` stripped, if it names a digest (or `allow_mutable`); else ImageRefError why."""
    parsed = parse_image_ref(ref)
    if not parsed.pinned and not allow_mutable:
        raise ImageRefError(
            f"image {ref.strip()!r} names no digest: a tag can be moved to another image after "
            f"compiling, so the pipeline version would not say what runs. Give REPO@sha256:<digest> "
            f"(`docker buildx imagetools inspect {ref.strip()}` shows it), or pass "
            f"--allow-mutable-image to accept the tag"
        )
    return ref.strip()
