"""`fedpipe check` and `fedpipe explain` through the real CLI entry point."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from pipelines.cli import main
from tests.support.paths import REPO

EXAMPLE = ["--sites", str(REPO / "sites"), "--policies", str(REPO / "policies")]


def copy_example(tmp_path: Path) -> tuple[Path, Path, list[str]]:
    sites, policies = tmp_path / "sites", tmp_path / "policies"
    shutil.copytree(REPO / "sites", sites)
    shutil.copytree(REPO / "policies", policies)
    return sites, policies, ["--sites", str(sites), "--policies", str(policies)]


def edit(path: Path, change: Callable[[dict[str, Any]], None]) -> None:
    doc = yaml.safe_load(path.read_text())
    change(doc)
    path.write_text(yaml.safe_dump(doc, sort_keys=False))


def test_check_passes_on_the_example(capsys):
    assert main(["check", *EXAMPLE]) == 0
    out = capsys.readouterr().out
    assert out.strip() == (
        "ok: 3 sites, coordinator coordinator (gcp europe-west4, NL), 3 policies; "
        "18 standard crossings allowed"
    )
    assert main(["check", "--verbose", *EXAMPLE]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 19 and all(line.startswith("allowed: ") for line in lines[:18])


def test_check_fails_when_the_coordinator_leaves_the_eu(tmp_path, capsys):
    sites, _, args = copy_example(tmp_path)
    edit(sites / "coordinator.yaml", lambda d: d.update(region="us-east1", jurisdiction="US"))
    assert main(["check", *args]) == 1
    err = capsys.readouterr().err.splitlines()
    assert err[0] == "fedpipe check: 6 residency violations (nothing was written):"
    berlin = [
        line for line in err if "site hospital-berlin" in line and "(class dp_update)" in line
    ]
    assert berlin == [
        "DENIED: task export@hospital-berlin artifact update (class dp_update) from site "
        "hospital-berlin to coordinator (task aggregate@coordinator); rule eu-health "
        "rules.dp_update: coordinator [coordinator, gcp us-east1, US] matches no rule "
        "([0] roles=coordinator, jurisdictions=EU)"
    ]
    assert not any("clinic-boston" in line for line in err)  # us-health allows a US coordinator


def test_check_fails_when_eu_dp_update_may_go_nowhere(tmp_path, capsys):
    _, policies, args = copy_example(tmp_path)
    edit(policies / "eu-health.yaml", lambda d: d["rules"].update(dp_update=[]))
    assert main(["check", *args]) == 1
    err = capsys.readouterr().err
    assert err.count("(class dp_update)") == 2
    assert (
        "from site hospital-paris to coordinator (task aggregate@coordinator); "
        "rule eu-health rules.dp_update: dp_update may go nowhere (no rule)"
    ) in err


def test_check_lists_all_three_errors_of_a_site_file(tmp_path, capsys):
    sites, _, args = copy_example(tmp_path)
    paris = sites / "hospital-paris.yaml"

    def break_it(doc):
        doc["regoin"] = doc.pop("region")  # misspelt (and so region is missing)
        del doc["policy"]  # missing
        doc["object_store"]["secure"] = "sometimes"  # wrong type

    edit(paris, break_it)
    assert main(["check", *args]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err[0] == "fedpipe check: error: 4 configuration errors:"
    assert err[1:] == [
        f"{paris}: region: field required",
        f"{paris}: policy: field required",
        f"{paris}: object_store.secure: value is not a valid boolean",
        f"{paris}: regoin: unknown field (extra fields not permitted); did you mean 'region'?",
    ]


def test_explain_shows_who_sends_what_where(capsys):
    assert main(["explain", *EXAMPLE]) == 0
    out = capsys.readouterr().out
    assert out.startswith(
        "Federation: 3 sites (clinic-boston, hospital-berlin, hospital-paris); "
        "coordinator coordinator [coordinator, gcp europe-west4, NL]\n"
    )
    berlin = out[out.index("hospital-berlin [site") : out.index("hospital-paris [site")]
    assert "  raw_data            nowhere (stays on hospital-berlin)" in berlin
    assert (
        "  dp_update           coordinator  by eu-health rules.dp_update[0] "
        "(roles=coordinator, jurisdictions=EU)"
    ) in berlin
    assert "  global_model        from coordinator  by coordinator rules.global_model[0]" in berlin
    assert (
        "DP: epsilon 3 per round, 50 lifetime, delta 1e-05; training without DP allowed" in berlin
    )
    assert "confusion-matrix cells below 5 suppressed" in berlin
    start = out.index("\nclinic-boston [site")
    boston = out[start : out.index("\ncoordinator [coordinator, gcp", start)]
    assert "us-health rules.dp_update[1]" in boston and "cells below 11 suppressed" in boston


def test_explain_one_site_as_json(capsys):
    assert main(["explain", *EXAMPLE, "--site", "coordinator", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert list(data) == ["coordinator"]
    sends = data["coordinator"]["sends"]
    assert [d["to"] for d in sends["global_model"]] == [
        "clinic-boston",
        "hospital-berlin",
        "hospital-paris",
    ]
    assert sends["dp_update"] == [] and sends["raw_data"] == []
    received = data["coordinator"]["receives"]["dp_update"]
    assert [(r["from"], r["rule"]) for r in received] == [
        ("clinic-boston", "us-health rules.dp_update[1]"),
        ("hospital-berlin", "eu-health rules.dp_update[0]"),
        ("hospital-paris", "eu-health rules.dp_update[0]"),
    ]


def test_explain_unknown_site_is_a_user_error(capsys):
    assert main(["explain", *EXAMPLE, "--site", "hospital-rome"]) == 2
    assert "--site 'hospital-rome': not in" in capsys.readouterr().err


def _let_local_model_leave(doc: dict[str, Any]) -> None:
    doc["rules"]["local_model"] = [{"roles": ["coordinator"], "jurisdictions": ["EU"]}]


def test_a_policy_letting_the_local_model_leave_is_refused(tmp_path, capsys):
    """Issue #11 item 3: it compiled with exit 0."""
    _, policies, args = copy_example(tmp_path)
    edit(policies / "eu-health.yaml", _let_local_model_leave)
    for command in (["check"], ["compile", "--out", str(tmp_path / "dist")]):
        assert main([*command, *args]) == 2
        err = capsys.readouterr().err
        assert (
            f"{policies / 'eu-health.yaml'}: rules: rules.local_model[0] (roles=coordinator, "
            "jurisdictions=EU) lets local_model leave the site: raw data and the local model "
            "never leave their site"
        ) in err
        assert "unsafe_override.allow_leaving_site" in err
    assert not (tmp_path / "dist").exists()


def test_an_unsafe_override_is_shown_by_explain_and_the_residency_report(tmp_path, capsys):
    _, policies, args = copy_example(tmp_path)

    def override(doc: dict[str, Any]) -> None:
        _let_local_model_leave(doc)
        doc["unsafe_override"] = {
            "allow_leaving_site": ["local_model"],
            "reason": "model audit by the coordinator's ethics board",
        }

    edit(policies / "eu-health.yaml", override)
    assert main(["explain", "--site", "hospital-berlin", *args]) == 0
    out = capsys.readouterr().out
    assert (
        "  UNSAFE OVERRIDE (policy eu-health unsafe_override): local_model may leave the site, "
        "against the design's invariant; reason given: model audit by the coordinator's ethics "
        "board"
    ) in out
    assert main(["explain", "--site", "hospital-berlin", "--json", *args]) == 0
    data = json.loads(capsys.readouterr().out)["hospital-berlin"]
    assert data["unsafe_override"]["allow_leaving_site"] == ["local_model"]
    assert [a["to"] for a in data["sends"]["local_model"]] == ["coordinator"]
    dist = tmp_path / "dist"
    assert main(["compile", "--out", str(dist), *args]) == 0
    md = (dist / "residency-report.md").read_text()
    assert "## UNSAFE overrides (1)" in md
    assert (
        "* **policy eu-health lets local_model leave the site** (sites hospital-berlin, "
        "hospital-paris), against the design's invariant; reason given: model audit"
    ) in md
    report = json.loads((dist / "residency-report.json").read_text())
    assert report["unsafe_overrides"]["eu-health"]["allow_leaving_site"] == ["local_model"]
