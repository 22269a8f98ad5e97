"""JSON Schemas of the site, policy and data contract files, for editors (yaml-language-server).

`python -m pipelines.config.jsonschema` rewrites `pipelines/config/schemas/*.schema.json`;
a test fails when the checked-in files differ from a fresh generation.
"""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import BaseModel

from components.domain.contract import DataContract
from components.domain.models import Policy, Site

SCHEMA_DIR = Path(__file__).parent / "schemas"
SCHEMA_FILES: dict[str, type[BaseModel]] = {
    "site.schema.json": Site,
    "policy.schema.json": Policy,
    "contract.schema.json": DataContract,
}


def schema_text(model: type[BaseModel]) -> str:
    """The model's JSON Schema (draft-07 `$schema` added) as stable, indented text."""
    schema = {"$schema": "http://json-schema.org/draft-07/schema#", **model.schema()}
    return json.dumps(schema, indent=2, sort_keys=True) + "\n"


def write_schemas(directory: Path = SCHEMA_DIR) -> list[Path]:
    """Write every schema file into `directory`; returns the paths written."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, model in SCHEMA_FILES.items():
        path = directory / name
        path.write_text(schema_text(model), encoding="utf-8")
        written.append(path)
    return written


if __name__ == "__main__":
    for written_path in write_schemas():
        print(written_path)
