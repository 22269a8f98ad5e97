"""Write a built pipeline as KFP YAML: the same documents as `kfp.compiler.Compiler`, faster.

Same content and key order as kfp 2.13's writer (`pipeline_spec_builder.write_pipeline_spec_to_file`:
header comments, the pipeline spec, then the platform spec), emitted with libyaml
(`CSafeDumper`, ~10× faster than the pure-Python emitter kfp uses) and with multi-line
strings (component source, shell scripts) as literal `|` blocks and no line folding, so a
component change reads as a code diff in `compile-check`. Deterministic: keys sorted.
Collections holding only scalars are written in flow style (`{componentInputParameter: seed}`,
PyYAML's `default_flow_style=None`): the same documents, a third fewer bytes at 100 sites,
where the Argo workflow has to fit in etcd.
The header comment abbreviates string defaults longer than HEADER_DEFAULT_MAX characters
(the compiled site and policy specs): the full value is in `root.inputDefinitions`.
"""

from __future__ import annotations

from typing import Any

import yaml
from google.protobuf import json_format
from kfp.compiler import pipeline_spec_builder as builder

_BASE = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
NO_WRAP = 1 << 30
HEADER_DEFAULT_MAX = 80


class _Dumper(_BASE):  # type: ignore[misc, valid-type]
    """Safe dumper: literal blocks for multi-line strings, never anchors/aliases."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _represent_str)


def pipeline_documents(pipeline: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """(pipeline spec, platform spec) of a built `@dsl.pipeline` as plain dicts."""
    spec = builder.modify_pipeline_spec_with_override(pipeline.pipeline_spec, None, None)
    return json_format.MessageToDict(spec), json_format.MessageToDict(pipeline.platform_spec)


def dump_pipeline(spec: dict[str, Any], platform: dict[str, Any], description: str | None) -> str:
    """The YAML text: kfp's header comments, the spec and (if any) the platform spec."""
    header = builder.extract_comments_from_pipeline_spec(_header_view(spec), description)
    documents = [spec, platform] if platform.get("platforms") else [spec]
    body = yaml.dump_all(
        documents,
        Dumper=_Dumper,
        sort_keys=True,
        width=NO_WRAP,
        allow_unicode=True,
        default_flow_style=None,
    )
    return header + body


def _header_view(spec: dict[str, Any]) -> dict[str, Any]:
    """`spec` with long string defaults of the root inputs abbreviated (for the header only)."""
    params = spec.get("root", {}).get("inputDefinitions", {}).get("parameters", {})
    short = {}
    for name, body in params.items():
        value = body.get("defaultValue")
        if isinstance(value, str) and len(value) > HEADER_DEFAULT_MAX:
            body = {**body, "defaultValue": f"<{len(value)} characters, see root.inputDefinitions>"}
        short[name] = body
    root = (
        {
            **spec["root"],
            "inputDefinitions": {**spec["root"]["inputDefinitions"], "parameters": short},
        }
        if params
        else spec.get("root")
    )
    return {**spec, "root": root}
