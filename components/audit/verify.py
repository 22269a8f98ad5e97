"""Verify audit chains: signatures, order, links, checkpoints and cross-references (pure).

`run_story` reports a coordinator chain without the run's `initialize` record, an aggregate
before it or after an initialize that refused the run, and a `report` whose final
version is not the last one published. `verify_chain` reports, per chain, an altered record (its signature no longer verifies), a
removed or reordered record (a `seq` out of place or a `prev` that is not the hash of the
record before), and a truncated or rewritten chain (a signed checkpoint states more records,
or another head, than the chain holds). `cross_check` reports a coordinator reference to a
record no site chain holds, and a site record of a consumed kind (default: `export`) that no
coordinator record references: the coordinator references every export it read, accepted or
rejected, so an unreferenced export was hidden by the coordinator or added by the site later.
`admissions_referenced` reports a site that an `initialize` record lets take part without
referencing its accepted admission record, and a site that accepted the run but that the
initialize record does not name at all.
`report_files` compares the sha256 the coordinator's last `report` record states for each
file the report task wrote (`summary.json`, `html`, `markdown`) with the files as found (the
caller reads them: a local run's pipeline root, or a folder of the report task's outputs), so
a report changed after it was written is named.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from components.audit.records import GENESIS, Checkpoint, Record, signature_ok

COORDINATOR = "coordinator"
CONSUMED_KINDS = ("export",)


@dataclass(frozen=True)
class Chain:
    """One chain as read from storage: records in key order, its checkpoints, the owner's
    public key (PEM)."""

    name: str
    records: Sequence[Record]
    checkpoints: Sequence[Checkpoint] = ()
    public_pem: str = ""


@dataclass
class Verdict:
    """Problems (empty: verified) and the timeline of every record, by time."""

    problems: list[str] = field(default_factory=list)
    timeline: list[tuple[str, str, int, str, str]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def _label(r: Record) -> str:
    rnd = r.body.get("round")
    return f"record #{r.seq} ({r.kind}{'' if rnd is None else f', round {rnd}'})"


def verify_chain(chain: Chain) -> list[str]:
    """Problems of one chain, each naming the chain and the record (empty: it verifies)."""
    problems: list[str] = []
    name = chain.name
    for pos, rec in enumerate(chain.records):
        where = f"{name}: {_label(rec)} at position {pos}"
        if rec.chain != name:
            problems.append(f"{where}: belongs to chain {rec.chain!r}")
        if not signature_ok(rec.payload(), rec.signature, chain.public_pem):
            problems.append(f"{where}: signature does not verify (record altered or forged)")
        if rec.seq != pos:
            problems.append(
                f"{where}: expected record #{pos} here (a record was removed or records "
                f"were reordered)"
            )
        want = GENESIS if pos == 0 else chain.records[pos - 1].hash
        if rec.prev != want:
            problems.append(
                f"{where}: does not link to the record before it (prev {rec.prev[:12]}…, "
                f"expected {want[:12]}…)"
            )
    for cp in chain.checkpoints:
        what = f"{name}: checkpoint of {cp.time} ({cp.count} records)"
        if cp.chain != name or not signature_ok(cp.payload(), cp.signature, chain.public_pem):
            problems.append(f"{what}: signature does not verify for this chain")
            continue
        if cp.count > len(chain.records):
            problems.append(
                f"{what}: the chain holds only {len(chain.records)} records (truncated)"
            )
        elif chain.records[cp.count - 1].hash != cp.head:
            problems.append(
                f"{what}: record #{cp.count - 1} is not the signed head (history rewritten)"
            )
    return problems


def cross_check(
    sites: Iterable[Chain], coordinator: Chain, consumed_kinds: Sequence[str] = CONSUMED_KINDS
) -> list[str]:
    """Problems between the site chains and the coordinator's references."""
    problems: list[str] = []
    held = {r.hash: (c.name, r) for c in sites for r in c.records}
    referenced: set[str] = set()
    for rec in coordinator.records:
        for ref in rec.refs:
            referenced.add(ref)
            if ref not in held:
                problems.append(
                    f"{coordinator.name}: {_label(rec)} references record {ref[:12]}… that no "
                    f"site chain holds (removed or altered at the site)"
                )
    for digest, (name, rec) in held.items():
        if rec.kind in consumed_kinds and digest not in referenced:
            problems.append(
                f"{name}: {_label(rec)} is not referenced by the coordinator chain (an "
                f"update the coordinator did not account for)"
            )
    return problems


def admissions_referenced(sites: Iterable[Chain], coordinator: Chain) -> list[str]:
    """Problems between the sites' accepted admission records and the coordinator's
    `initialize` records, which reference (by hash) the admission and validation records
    behind each validation summary they decided on: a site an initialize record lets take
    part must have an accepted admission record among its refs, and a site whose chain holds
    an accepted admission must appear in the initialize record (taking part or abstaining).
    A site chain without an accepted admission gives nothing to compare here (aggregate
    refuses that site's updates; its other records are cross-checked by `cross_check`)."""
    accepted: dict[str, list[Record]] = {}
    for chain in sites:
        for rec in chain.records:
            if rec.kind == "admission" and rec.body.get("decision") == "accept":
                accepted.setdefault(chain.name, []).append(rec)
    problems: list[str] = []
    starts = [
        r
        for r in coordinator.records
        if r.kind == "initialize" and r.body.get("decision") == "accept"
    ]
    for start in starts:
        refs = set(start.refs)
        for site in start.body.get("taking_part") or []:
            admissions = accepted.get(f"site/{site}", [])
            if admissions and not any(a.hash in refs for a in admissions):
                seqs = ", ".join(f"#{a.seq}" for a in admissions)
                problems.append(
                    f"{coordinator.name}: {_label(start)} lets site {site} take part without "
                    f"referencing its accepted admission record (site/{site} {seqs})"
                )
    if starts:
        last = starts[-1]
        named = set(last.body.get("taking_part") or []) | set(last.body.get("abstained") or {})
        for name, admissions in sorted(accepted.items()):
            site = name.removeprefix("site/")
            if site not in named:
                problems.append(
                    f"{name}: {_label(admissions[-1])} accepted the run, but the coordinator's "
                    f"{_label(last)} neither lets the site take part nor names it abstaining"
                )
    return problems


def run_story(coordinator: Chain) -> list[str]:
    """Problems in the coordinator's account of the run: it holds an `initialize` record (the
    quorum decision and the starting model's sha256) before any `aggregate`, no aggregate
    follows an initialize that refused the run, and a `report` names the version the last
    `publish` before it published."""
    records = list(coordinator.records)
    if not records:
        return []
    name = coordinator.name
    problems: list[str] = []
    if not any(r.kind == "initialize" for r in records):
        problems.append(
            f"{name}: no initialize record (the run's quorum decision and starting model are "
            f"not on record)"
        )
    started: Record | None = None
    published: int | None = None
    for rec in records:
        if rec.kind == "initialize":
            started = rec
        elif rec.kind == "aggregate":
            if started is None:
                problems.append(f"{name}: {_label(rec)} comes before any initialize record")
            elif started.body.get("decision") == "refuse":
                problems.append(
                    f"{name}: {_label(rec)} follows initialize record #{started.seq}, which "
                    f"refused the run"
                )
        elif rec.kind == "publish":
            published = rec.body.get("version")
        elif rec.kind == "report" and rec.body.get("final_version") != published:
            problems.append(
                f"{name}: {_label(rec)} names final model v{rec.body.get('final_version')}, "
                f"the last publish before it v{published}"
            )
    return problems


def report_files(coordinator: Chain, files: Mapping[str, bytes | None], where: str) -> list[str]:
    """Problems between the coordinator's last `report` record and the report files as found
    in `where`: `files` maps each name the record hashes (`summary.json`, `html`, `markdown`)
    to the file's bytes, or None when that file is missing there. A file the record does not
    name is not judged; no report record while files were given is a problem."""
    reports = [r for r in coordinator.records if r.kind == "report"]
    if not reports:
        return [
            f"{coordinator.name}: no report record to check the report files in {where} against"
        ]
    record = reports[-1]
    stated = record.body.get("sha256") or {}
    problems: list[str] = []
    for name, want in sorted(stated.items()):
        data = files.get(name)
        if data is None:
            problems.append(
                f"report file {name} is missing from {where} ({coordinator.name} "
                f"{_label(record)} states sha256 {str(want)[:12]}…)"
            )
            continue
        got = hashlib.sha256(data).hexdigest()
        if got != want:
            problems.append(
                f"report file {name} in {where} was changed after the report task wrote it: "
                f"sha256 {got[:12]}…, {coordinator.name} {_label(record)} states "
                f"{str(want)[:12]}…"
            )
    return problems


def verify_run(
    chains: Mapping[str, Chain],
    report: tuple[str, Mapping[str, bytes | None]] | None = None,
) -> Verdict:
    """Every chain, the coordinator's account of the run (`run_story`), then the cross-check
    of the site chains against the coordinator's; with `report` = (where, {name: bytes or
    None}), the report files against the coordinator's report record (`report_files`)."""
    verdict = Verdict()
    for name in sorted(chains):
        verdict.problems += verify_chain(chains[name])
        verdict.timeline += [
            (r.time, name, r.seq, r.kind, r.body.get("summary", "")) for r in chains[name].records
        ]
    if COORDINATOR in chains:
        sites = [c for n, c in sorted(chains.items()) if n != COORDINATOR]
        verdict.problems += run_story(chains[COORDINATOR])
        verdict.problems += cross_check(sites, chains[COORDINATOR])
        verdict.problems += admissions_referenced(sites, chains[COORDINATOR])
        if report is not None:
            verdict.problems += report_files(chains[COORDINATOR], report[1], report[0])
    else:
        verdict.problems.append("no coordinator chain: site records cannot be cross-checked")
    verdict.timeline.sort()
    return verdict


def format_timeline(verdict: Verdict) -> str:
    """One line per record, by time, then the problems (or 'verified')."""
    lines = [
        f"{t}  {chain:<24} #{seq:<4} {kind:<12} {summary}"
        for t, chain, seq, kind, summary in verdict.timeline
    ]
    lines.append("")
    lines += [f"PROBLEM {p}" for p in verdict.problems] or [
        "verified: every chain, checkpoint and cross-reference"
    ]
    return "\n".join(lines)
