"""The checked-in JSON Schemas are fresh, and editors validating with them accept the examples."""

from __future__ import annotations

import json

import jsonschema
import pytest
import yaml

from pipelines.config.jsonschema import SCHEMA_DIR, SCHEMA_FILES, schema_text, write_schemas
from tests.support.paths import REPO

EXAMPLES = sorted((REPO / "sites").glob("*.yaml")) + sorted((REPO / "policies").glob("*.yaml"))


@pytest.mark.parametrize("name", sorted(SCHEMA_FILES))
def test_checked_in_schema_equals_fresh_generation(name):
    fresh = schema_text(SCHEMA_FILES[name])
    assert (
        (SCHEMA_DIR / name).read_text() == fresh
    ), f"{name} is stale: run `.venv/bin/python -m pipelines.config.jsonschema`"


def test_write_schemas(tmp_path):
    written = write_schemas(tmp_path)
    assert sorted(p.name for p in written) == sorted(SCHEMA_FILES)
    assert all(json.loads(p.read_text())["additionalProperties"] is False for p in written)


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_examples_point_editors_at_their_schema_and_validate(path):
    kind = "site" if path.parent.name == "sites" else "policy"
    first = path.read_text().splitlines()[0]
    assert (
        first == f"# yaml-language-server: $schema=../pipelines/config/schemas/{kind}.schema.json"
    )
    schema = json.loads((SCHEMA_DIR / f"{kind}.schema.json").read_text())
    doc = yaml.safe_load(path.read_text())
    jsonschema.validate(doc, schema)
    doc["jurisdicton"] = "DE"
    with pytest.raises(jsonschema.ValidationError, match="jurisdicton"):
        jsonschema.validate(doc, schema)


def test_site_schema_requires_data_for_sites_only():
    schema = json.loads((SCHEMA_DIR / "site.schema.json").read_text())
    berlin = yaml.safe_load((REPO / "sites" / "hospital-berlin.yaml").read_text())
    coordinator = yaml.safe_load((REPO / "sites" / "coordinator.yaml").read_text())
    del berlin["data"]
    with pytest.raises(jsonschema.ValidationError, match="'data' is a required property"):
        jsonschema.validate(berlin, schema)
    coordinator["data"] = {
        "contract": "x",
        "uri": "gs://a/b",
        "holdout_uri": "gs://a/c",
        "snapshot": "1",
    }
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(coordinator, schema)
