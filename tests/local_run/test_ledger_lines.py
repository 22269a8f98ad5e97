"""The console's privacy lines come from the sites' ledgers (pure lines, and the Progress
printer fed a resumed round)."""

from __future__ import annotations

import json
import math
from pathlib import Path

from components.privacy.accounting import SAMPLING_POISSON, DpSgdEvent, rdp_epsilon
from components.privacy.ledger import LedgerEntry, new_entry
from pipelines.local_run.ledger_lines import (
    RoundPrivacy,
    eps_text,
    round_privacy,
    run_epsilon_line,
    train_text,
)
from pipelines.local_run.progress import TaskInfo
from pipelines.local_run.reporter import LedgerView, Progress

DELTA = 1e-5
EVENT = DpSgdEvent(sampling_rate=8 / 100, noise_multiplier=1.5, steps=60)
NOTHING = DpSgdEvent(sampling_rate=8 / 100, noise_multiplier=1.5, steps=0)  # epsilon 0


def _entry(site: str, run: str, rnd: int, attempt: int = 1, event=EVENT) -> LedgerEntry:
    return new_entry(
        run_id=run,
        round_=rnd,
        site_id=site,
        attempt=attempt,
        event=event,
        delta=DELTA,
        batch_size=8,
        epochs=5,
        num_examples=100 + attempt,
        l2_norm_clip=1.0,
        created_at="2026-12-06T20:00:00Z",
        sampling=SAMPLING_POISSON,
    )


def test_round_privacy_composes_the_rounds_attempts_and_the_whole_ledger() -> None:
    one = rdp_epsilon([EVENT], DELTA)
    ledger = [_entry("a", "old", 1), _entry("a", "run", 1), _entry("a", "run", 2, 1)]
    ledger.append(_entry("a", "run", 2, 2))  # a retried round 2: both attempts charged
    p = round_privacy(ledger, "run", 2, DELTA)
    assert p.attempts == 2 and p.rows == 102  # the latest attempt's rows
    assert math.isclose(p.round_epsilon, rdp_epsilon([EVENT] * 2, DELTA), rel_tol=1e-12)
    assert math.isclose(p.lifetime_epsilon, rdp_epsilon([EVENT] * 4, DELTA), rel_tol=1e-12)
    assert p.lifetime_epsilon > p.round_epsilon > one
    assert round_privacy(ledger, "run", 3, DELTA).round_epsilon is None
    assert round_privacy([], "run", 1, DELTA) == RoundPrivacy(None, 0.0, 0, None)


def test_train_text_reads_as_the_readme_shows() -> None:
    p = RoundPrivacy(round_epsilon=2.33, lifetime_epsilon=2.33, attempts=1, rows=122)
    assert train_text(p) == "trained on 122 rows, ε this round 2.330 RDP, ledger total 2.330"
    retried = RoundPrivacy(round_epsilon=3.0, lifetime_epsilon=9.5, attempts=2, rows=122)
    assert train_text(retried) == (
        "trained on 122 rows, ε this round 3.000 RDP (2 attempts charged), ledger total 9.500"
    )
    assert eps_text(math.inf) == "∞ (DP off)" and eps_text(None) == "–"


def test_run_line_lists_every_site_with_its_ledger_composition() -> None:
    ledgers = {
        "a": [_entry("a", "run", 1, event=NOTHING), _entry("a", "run", 2, event=NOTHING)],
        "b": [_entry("b", "other", 1)],
        "c": [_entry("c", "run", 3, event=NOTHING)],
    }
    line = run_epsilon_line(["a", "b", "c"], ledgers, dict.fromkeys("abc", DELTA), "run", 2)
    # a: two zero-step rounds compose to 0; b: only another run's entry; c: round 3 is later
    assert line == "ε this run up to round 2 (ledgers, RDP): a 0.000, b –, c –"


def _event(kind: str, task: str, status: str = "") -> str:
    return "FEDPIPE_EVENT " + json.dumps({"kind": kind, "task": task, "status": status})


def test_resumed_round_lines_list_every_site_with_the_ledgers_figures(tmp_path: Path) -> None:
    # round 2 of a resumed run: a and c train now (their outputs are model references),
    # b's export was done before the interruption (resumed); all three charged round 1 too
    ledgers = {
        "a": [_entry("a", "run", 1), _entry("a", "run", 2)],
        "b": [_entry("b", "run", 1), _entry("b", "run", 2)],
        "c": [_entry("c", "earlier", 1), _entry("c", "run", 1), _entry("c", "run", 2)],
    }
    root = tmp_path / "kfp" / "federated-training-2026"
    outputs = {
        "train-a-r2": {"ref.json": {"bucket": "a-fl", "prefix": "local-models/x/"}},
        "train-b-r2": {"meta.json": {"status": "resumed", "reason": "already exported"}},
        "train-c-r2": {"ref.json": {"bucket": "c-fl", "prefix": "local-models/y/"}},
        "aggregate-r2": {"round.json": {"version": 2, "contributors": ["a", "b", "c"]}},
    }
    for task, docs in outputs.items():
        for name, body in docs.items():
            (root / task / "out").mkdir(parents=True, exist_ok=True)
            (root / task / "out" / name).write_text(json.dumps(body))
    tasks = {f"train-{s}-r2": TaskInfo(f"train-{s}-r2", "train", s, 2) for s in ("a", "b", "c")}
    tasks["aggregate-r2"] = TaskInfo("aggregate-r2", "aggregate", "coordinator", 2)
    lines: list[str] = []
    view = LedgerView(
        "run",
        ("a", "b", "c"),
        dict.fromkeys("abc", DELTA),
        lambda site: ledgers[site],
    )
    progress = Progress(
        tasks,
        3,
        tmp_path / "kfp",
        "federated-training",
        tmp_path / "logs",
        lines.append,
        ledgers=view,
    )
    for task in outputs:
        progress.feed(_event("start", task))
        progress.feed(_event("finish", task, "SUCCESS"))
    one, two, three = (f"{rdp_epsilon([EVENT] * k, DELTA):.3f}" for k in (1, 2, 3))
    trains = [line.split("✓ ", 1)[1] for line in lines if " train " in line]
    assert trains == [
        f"trained on 101 rows, ε this round {one} RDP, ledger total {two}",
        f"RESUMED, no budget spent: already exported; ledger total {two}",
        f"trained on 101 rows, ε this round {one} RDP, ledger total {three}",
    ]
    # every site, both rounds of this run composed (c's earlier run is not this run's)
    assert lines[-1].strip() == (
        f"ε this run up to round 2 (ledgers, RDP): a {two}, b {two}, c {two}"
    )


def test_a_shuffled_round_is_marked_not_proven() -> None:
    from dataclasses import replace

    shuffled = replace(_entry("a", "run", 1), sampling="shuffle", guarantee="")
    p = round_privacy([shuffled], "run", 1, DELTA)
    assert p.not_proven
    assert "(not proven: shuffled batches, dp_sampling=shuffle)" in train_text(p)
    assert not round_privacy([_entry("a", "run", 1)], "run", 1, DELTA).not_proven


def test_the_final_lines_say_how_many_ledger_entries_are_not_proven(tmp_path) -> None:
    from pipelines.local_run.host import print_result

    lines: list[str] = []
    entry = {"epsilon": 2.2, "epsilon_pld": 1.9, "lifetime_epsilon": 2.2}
    summary = {
        "final": {},
        "ledgers": {
            "a": {**entry, "lifetime_not_proven_entries": 1},
            "b": {**entry, "lifetime_not_proven_entries": 0},
        },
    }
    print_result(summary, tmp_path, lines.append)
    (a,) = [line for line in lines if line.strip().startswith("a ")]
    (b,) = [line for line in lines if line.strip().startswith("b ")]
    assert a.endswith("lifetime ledger 2.200 (not proven: 1 shuffled-batch entries)")
    assert b.endswith("lifetime ledger 2.200")


def test_the_final_lines_name_earlier_rounds_above_the_membership_bound(tmp_path) -> None:
    from pipelines.local_run.host import print_result

    lines: list[str] = []
    above = [
        {"site": "a", "round": 1, "advantage": 0.5, "bound": 0.4},
        {"site": "b", "round": 3, "advantage": 0.7, "bound": 0.65},  # the final round's
    ]
    print_result({"final": {"round": 3}, "membership_above_bound": above}, tmp_path, lines.append)
    assert (
        "  membership advantage above the bound in earlier rounds: a round 1 (0.500 > 0.4000)"
        in (lines)
    )
    lines.clear()
    print_result(
        {"final": {"round": 3}, "membership_above_bound": above[1:]}, tmp_path, lines.append
    )
    assert not any("earlier rounds" in line for line in lines)
