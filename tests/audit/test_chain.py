"""Audit chains: a clean run verifies; each kind of tampering is caught and named."""

from __future__ import annotations

import dataclasses

import pytest

from components.audit.records import (
    GENESIS,
    AuditFormatError,
    Checkpoint,
    Record,
    append,
    checkpoint,
)
from components.audit.verify import Chain, format_timeline, verify_chain, verify_run
from components.common.manifest import generate_keypair

KEYS = {name: generate_keypair() for name in ("site/a", "site/b", "coordinator")}


def t(minute: int) -> str:
    return f"2026-12-02T10:{minute:02d}:00Z"


def build_chain(name: str, events, minute0: int = 0) -> list[Record]:
    records: list[Record] = []
    for i, (kind, body, refs) in enumerate(events):
        prev = records[-1] if records else None
        records.append(append(prev, name, kind, body, KEYS[name][0], t(minute0 + i), refs))
    return records


def site_events(site: str):
    return [
        ("admission", {"round": 0, "summary": f"{site} accepted"}, []),
        ("validation", {"round": 0, "summary": "ok"}, []),
        ("export", {"round": 1, "summary": "update sha256 …"}, []),
    ]


def federation():
    """Chains of sites a and b and the coordinator, whose aggregate references both exports."""
    sites = {n: build_chain(n, site_events(n)) for n in ("site/a", "site/b")}
    exports = [sites[n][2].hash for n in sorted(sites)]
    coord = build_chain(
        "coordinator",
        [
            ("initialize", {"round": 0, "summary": "v0"}, []),
            ("aggregate", {"round": 1, "summary": "v1 from a, b"}, exports),
        ],
        minute0=10,
    )
    return {**sites, "coordinator": coord}


def chains(records, checkpoints=None):
    checkpoints = checkpoints or {}
    return {n: Chain(n, recs, checkpoints.get(n, ()), KEYS[n][1]) for n, recs in records.items()}


def with_checkpoints(records):
    return {n: [checkpoint(recs, KEYS[n][0], t(30))] for n, recs in records.items()}


def test_a_clean_run_verifies_with_a_timeline():
    recs = federation()
    verdict = verify_run(chains(recs, with_checkpoints(recs)))
    assert verdict.ok, verdict.problems
    assert [(c, s) for _, c, s, _, _ in verdict.timeline[:2]] == [("site/a", 0), ("site/b", 0)]
    assert verdict.timeline[-1][1:4] == ("coordinator", 1, "aggregate")
    assert format_timeline(verdict).endswith(
        "verified: every chain, checkpoint and cross-reference"
    )
    assert recs["site/a"][0].prev == GENESIS and recs["site/a"][1].prev == recs["site/a"][0].hash


def test_records_round_trip_through_json_and_refuse_other_shapes():
    rec = federation()["coordinator"][1]
    assert Record.from_json(rec.to_json()) == rec
    cp = checkpoint([rec], KEYS["coordinator"][0], t(1))
    assert Checkpoint.from_json(cp.to_json()) == cp
    with pytest.raises(AuditFormatError, match="expected fields"):
        Record.from_json(b'{"chain": "x"}')
    with pytest.raises(AuditFormatError, match="not valid JSON"):
        Record.from_json(b"{")


def test_an_altered_record_is_caught():
    recs = federation()
    a = recs["site/a"]
    a[1] = dataclasses.replace(a[1], body={"round": 0, "summary": "refused"})  # same signature
    problems = verify_chain(chains(recs)["site/a"])
    assert problems[0] == (
        "site/a: record #1 (validation, round 0) at position 1: signature does not verify "
        "(record altered or forged)"
    )
    assert "record #2 (export, round 1) at position 2: does not link" in problems[1]


def test_a_removed_record_is_caught():
    recs = federation()
    del recs["site/a"][1]
    problems = verify_chain(chains(recs)["site/a"])
    assert any(
        "record #2 (export, round 1) at position 1: expected record #1 here" in p for p in problems
    )
    assert any("at position 1: does not link" in p for p in problems)


def test_two_swapped_records_are_caught():
    recs = federation()
    a = recs["site/a"]
    a[1], a[2] = a[2], a[1]
    problems = verify_chain(chains(recs)["site/a"])
    assert sum("expected record #" in p for p in problems) == 2
    assert sum("does not link" in p for p in problems) == 2


def test_a_truncated_chain_is_caught_by_its_checkpoint_only():
    recs = federation()
    cps = with_checkpoints(recs)
    recs["coordinator"] = recs["coordinator"][:1]  # the aggregate record dropped
    assert verify_chain(chains(recs)["coordinator"]) == []  # a prefix alone looks fine
    problems = verify_chain(chains(recs, cps)["coordinator"])
    assert problems == [
        f"coordinator: checkpoint of {t(30)} (2 records): the chain holds only 1 records "
        f"(truncated)"
    ]


def test_a_rewritten_tail_is_caught_by_the_checkpoint_head():
    recs = federation()
    cps = with_checkpoints(recs)
    coord = recs["coordinator"]
    coord[1] = append(
        coord[0], "coordinator", "aggregate", {"round": 1}, KEYS["coordinator"][0], t(12), []
    )
    problems = verify_chain(chains(recs, cps)["coordinator"])
    assert problems == [
        f"coordinator: checkpoint of {t(30)} (2 records): record #1 is not the signed head "
        f"(history rewritten)"
    ]


def test_a_forged_checkpoint_is_refused():
    recs = federation()
    forged = checkpoint(recs["site/a"], KEYS["site/b"][0], t(30))  # signed by another key
    forged = dataclasses.replace(forged, chain="site/a")
    problems = verify_chain(chains(recs, {"site/a": [forged]})["site/a"])
    assert problems == [
        f"site/a: checkpoint of {t(30)} (3 records): signature does not verify for this chain"
    ]


def test_a_site_record_the_coordinator_does_not_reference_is_caught():
    recs = federation()
    a = recs["site/a"]
    a.append(append(a[-1], "site/a", "export", {"round": 2}, KEYS["site/a"][0], t(20)))
    verdict = verify_run(chains(recs))
    assert verdict.problems == [
        "site/a: record #3 (export, round 2) is not referenced by the coordinator chain (an "
        "update the coordinator did not account for)"
    ]


def test_a_reference_to_a_record_no_site_holds_is_caught():
    recs = federation()
    ref = recs["site/b"][2].hash
    recs["site/b"] = recs["site/b"][:2]  # the site drops its export record (and no checkpoint)
    verdict = verify_run(chains(recs))
    assert verdict.problems == [
        f"coordinator: record #1 (aggregate, round 1) references record {ref[:12]}… that no "
        f"site chain holds (removed or altered at the site)"
    ]


def test_a_record_signed_by_another_key_and_a_missing_coordinator_chain():
    recs = federation()
    b = recs["site/b"]
    b[0] = append(None, "site/b", "admission", {"round": 0}, KEYS["site/a"][0], t(0))
    assert "signature does not verify" in verify_chain(chains(recs)["site/b"])[0]
    del recs["coordinator"]
    assert "no coordinator chain" in verify_run(chains(recs)).problems[-1]


def test_the_coordinator_chain_must_start_with_initialize_and_report_the_last_publish():
    """initialize (quorum decision, starting model) and report (its digests) are on record;
    a chain without the start, an aggregate after a refusal and a report naming another
    version than the last publish are caught."""
    sites = {n: build_chain(n, site_events(n)) for n in ("site/a", "site/b")}
    exports = [sites[n][2].hash for n in sorted(sites)]
    start = ("initialize", {"round": 0, "decision": "accept", "summary": "v0"}, [])
    aggregate = ("aggregate", {"round": 1, "summary": "v1"}, exports)
    publish = ("publish", {"round": 1, "version": 1, "summary": "v1 published"}, [])

    def report(version):
        return ("report", {"round": 1, "final_version": version, "summary": "report"}, [])

    def run(events):
        return verify_run(chains({**sites, "coordinator": build_chain("coordinator", events)}))

    assert run([start, aggregate, publish, report(1)]).ok
    assert run([aggregate, publish, report(1)]).problems == [
        "coordinator: no initialize record (the run's quorum decision and starting model are "
        "not on record)",
        "coordinator: record #0 (aggregate, round 1) comes before any initialize record",
    ]
    assert run([aggregate, start, publish, report(1)]).problems == [
        "coordinator: record #0 (aggregate, round 1) comes before any initialize record",
    ]
    refused = ("initialize", {"round": 0, "decision": "refuse", "summary": "no quorum"}, [])
    assert run([refused, aggregate, publish]).problems == [
        "coordinator: record #1 (aggregate, round 1) follows initialize record #0, which "
        "refused the run"
    ]
    assert run([start, aggregate, publish, report(2)]).problems == [
        "coordinator: record #3 (report, round 1) names final model v2, the last publish "
        "before it v1"
    ]


def test_report_files_are_checked_against_the_report_record():
    """The report record's sha256 of summary.json, the HTML and the Markdown are recomputed
    from the files: a changed file and a missing one are named, unchanged files pass."""
    import hashlib

    from components.audit.run_events import report_body

    files = {"summary.json": b'{"rounds": []}', "html": b"<html></html>", "markdown": b"# r"}
    digests = {n: hashlib.sha256(b).hexdigest() for n, b in files.items()}
    sites = {n: build_chain(n, site_events(n)) for n in ("site/a", "site/b")}
    exports = [sites[n][2].hash for n in sorted(sites)]
    coord = build_chain(
        "coordinator",
        [
            ("initialize", {"round": 0, "decision": "accept", "summary": "v0"}, []),
            ("aggregate", {"round": 1, "summary": "v1"}, exports),
            ("publish", {"round": 1, "version": 1, "summary": "v1 published"}, []),
            ("report", report_body(rounds=1, final_version=1, digests=digests), []),
        ],
        minute0=10,
    )
    all_chains = chains({**sites, "coordinator": coord})
    assert verify_run(all_chains, ("out/report", files)).ok
    assert verify_run(all_chains).ok  # without the files nothing is compared

    changed = {**files, "html": b"<html>accuracy 99%</html>", "markdown": None}
    problems = verify_run(all_chains, ("out/report", changed)).problems
    assert problems == [
        f"report file html in out/report was changed after the report task wrote it: sha256 "
        f"{hashlib.sha256(changed['html']).hexdigest()[:12]}…, coordinator record #3 (report, "
        f"round 1) states {digests['html'][:12]}…",
        f"report file markdown is missing from out/report (coordinator record #3 (report, "
        f"round 1) states sha256 {digests['markdown'][:12]}…)",
    ]
    without_report = chains({**sites, "coordinator": coord[:3]})
    assert verify_run(without_report, ("out/report", files)).problems == [
        "coordinator: no report record to check the report files in out/report against"
    ]


def test_initialize_must_reference_every_accepted_admission_it_lets_take_part():
    """The initialize record references each site's admission and validation records (from
    the validation summaries); verify names a site taking part whose accepted admission is
    not referenced, and a site that accepted but is named neither taking part nor abstaining."""
    accept = {"round": 0, "decision": "accept", "summary": "accepted"}
    sites = {
        n: build_chain(
            n,
            [
                ("admission", {**accept, "site": n}, []),
                ("validation", {"round": 0, "passed": True, "summary": "ok"}, []),
                ("export", {"round": 1, "summary": "update"}, []),
            ],
        )
        for n in ("site/a", "site/b")
    }
    exports = [sites[n][2].hash for n in sorted(sites)]
    refs = [sites[n][i].hash for n in sorted(sites) for i in (0, 1)]

    def start(taking_part, abstained, refs):
        body = {"round": 0, "decision": "accept", "summary": "v0"}
        return ("initialize", {**body, "taking_part": taking_part, "abstained": abstained}, refs)

    def run(events):
        return verify_run(chains({**sites, "coordinator": build_chain("coordinator", events)}))

    aggregate = ("aggregate", {"round": 1, "summary": "v1"}, exports)
    assert run([start(["a", "b"], {}, refs), aggregate]).ok
    assert run([start(["a", "b"], {}, refs[2:]), aggregate]).problems == [
        "coordinator: record #0 (initialize, round 0) lets site a take part without "
        "referencing its accepted admission record (site/a #0)"
    ]
    assert run([start(["a"], {}, refs[:2]), aggregate]).problems == [
        "site/b: record #0 (admission, round 0) accepted the run, but the coordinator's "
        "record #0 (initialize, round 0) neither lets the site take part nor names it abstaining"
    ]
    # abstaining (e.g. its budget) after an accepted admission is an account of the site
    assert run([start(["a"], {"b": "budget"}, refs), aggregate]).ok
