"""Read the pipeline digest and the facts shown in KFP from a compiled pipeline YAML. Pure.

Contract with the compiler (`fedpipe compile`): the first YAML document's
`pipelineInfo.description` contains the pipeline digest as `digest: sha256:<64 hex>` (the
prefix may be omitted). The digest is the sha256 of the pipeline spec, the sites and the
policies (`pipelines.compiler.pipeline_version`), so it names the pipeline version on the host,
read in the form `sha256:<hex>` that `fedpipe compile` prints; on the host the version is
named `sha256-<hex>` (`version_name_for`: Kubernetes object names allow no colon).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import yaml

_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_DIGEST = re.compile(r"\bdigest\s*[:=]\s*(?:sha256:)?([0-9a-f]{64})\b", re.IGNORECASE)


class PipelineYamlError(ValueError):
    """A file that is not a compiled fedpipe pipeline; the message names the file and field."""


@dataclass(frozen=True)
class PipelineParameter:
    """A root input parameter of the pipeline as the KFP UI shows it."""

    name: str
    type: str  # KFP parameterType: STRING, NUMBER_INTEGER, NUMBER_DOUBLE, BOOLEAN, ...
    default: Any  # None when the parameter has no default
    description: str


@dataclass(frozen=True)
class PipelineInfo:
    """What upload needs from a compiled pipeline YAML."""

    name: str
    description: str
    digest: str
    parameters: tuple[PipelineParameter, ...]


def _spec(yaml_text: str, source: str) -> dict[str, Any]:
    try:
        docs = [d for d in yaml.load_all(yaml_text, Loader=_LOADER) if d is not None]
    except yaml.YAMLError as exc:
        raise PipelineYamlError(f"{source}: not valid YAML: {exc}") from exc
    if not docs or not isinstance(docs[0], dict) or "pipelineInfo" not in docs[0]:
        raise PipelineYamlError(
            f"{source}: not a compiled KFP pipeline (no pipelineInfo); compile it with"
            " `fedpipe compile`"
        )
    return docs[0]


def pipeline_digest_of(yaml_text: str, source: str = "pipeline YAML") -> str:
    """The digest `sha256:<64 lowercase hex>` the compiler wrote into `pipelineInfo.description`.

    Raises `PipelineYamlError` naming `source` when the YAML has none.
    """
    description = str(_spec(yaml_text, source)["pipelineInfo"].get("description") or "")
    match = _DIGEST.search(description)
    if match is None:
        raise PipelineYamlError(
            f"{source}: pipelineInfo.description has no 'digest: <sha256 hex>'; was it compiled"
            " by `fedpipe compile`?"
        )
    return "sha256:" + match.group(1).lower()


def version_name_for(digest: str) -> str:
    """The KFP pipeline version name of a digest: `sha256:<hex>` → `sha256-<hex>`.

    A colon is not allowed in a Kubernetes object name, and KFP's Kubernetes pipeline store
    uses the version name as one; `sha256-<hex>` (71 characters) is valid in both stores.
    """
    return digest.replace(":", "-", 1)


def normalize_version_ref(ref: str) -> str:
    """A user's `--version` as a version name (prefix): `sha256:<hex>`, `sha256-<hex>` and bare
    hex (or prefixes of them) all become `sha256-<hex…>`; other names are kept."""
    ref = ref.strip()
    if re.fullmatch(r"[0-9a-fA-F]+", ref):
        return "sha256-" + ref.lower()
    return version_name_for(ref) if ref.startswith("sha256:") else ref


def parameters_of(spec: dict[str, Any]) -> tuple[PipelineParameter, ...]:
    """Root input parameters of a pipeline spec (dict of the first YAML document)."""
    params = spec.get("root", {}).get("inputDefinitions", {}).get("parameters", {}) or {}
    return tuple(
        PipelineParameter(
            name=name,
            type=str(p.get("parameterType", "STRING")),
            default=p.get("defaultValue"),
            description=str(p.get("description", "")),
        )
        for name, p in sorted(params.items())
    )


def pipeline_info_of(yaml_text: str, source: str = "pipeline YAML") -> PipelineInfo:
    """Name, description, digest and root parameters of a compiled pipeline YAML."""
    spec = _spec(yaml_text, source)
    info = spec["pipelineInfo"]
    return PipelineInfo(
        name=str(info.get("displayName") or info.get("name") or ""),
        description=str(info.get("description") or ""),
        digest=pipeline_digest_of(yaml_text, source),
        parameters=parameters_of(spec),
    )


def version_description(info: PipelineInfo, max_chars: int = 1000) -> str:
    """Readable text for the pipeline version in the KFP UI: digest first, then parameters."""
    lines = [f"fedpipe pipeline {info.name}, digest {info.digest}"]
    first = info.description.strip().splitlines()
    if first and not _DIGEST.search(first[0]):
        lines.append(first[0])
    if info.parameters:
        shown = ", ".join(
            f"{p.name}={p.default!r}" if p.default is not None else p.name for p in info.parameters
        )
        lines.append(f"parameters: {shown}")
    text = "\n".join(lines)
    return text if len(text) <= max_chars else text[: max_chars - 1] + "…"
