"""Host-side work after the pipeline: ledgers, the summary, the outputs and the result lines.

Runs in the runner's process once kfp.local finished: re-accounts each site's privacy ledger,
scores every global model on the pooled test set, trains the centralized baseline, writes
`summary.json` (last: it marks a finished run), the reports and the final global model.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from components.domain.models import Site
from pipelines.config.loader import Federation
from pipelines.local_run import collect as collect_mod
from pipelines.local_run.options import RunError, RunOptions, compiled_setting
from pipelines.local_run.stores import LocalStores


def ledger_reader(stores: LocalStores, sites: dict[str, Site]) -> Callable[[str], list[Any]]:
    """`read(site_id)`: the site's ledger entries from its bucket. Entries are create-only,
    so each object is fetched once and kept."""
    from components.privacy.ledger import LedgerEntry, site_prefix

    cache: dict[tuple[str, str], Any] = {}

    def read(site_id: str) -> list[Any]:
        site = sites[site_id]
        entries = []
        for key in stores.list_keys(site, site_prefix(site_id)):
            if (site_id, key) not in cache:
                data = stores.get_bytes(site, key)
                if data is None:
                    continue
                cache[(site_id, key)] = LedgerEntry.from_json(data, f"{site_id}:{key}")
            entries.append(cache[(site_id, key)])
        return entries

    return read


def read_ledgers(
    stores: LocalStores, federation: Federation, sites: dict[str, Site], run_id: str
) -> tuple[dict[str, dict[str, Any]], dict[str, dict[int, tuple[float | None, float | None]]]]:
    """Per site: this run's and the lifetime epsilon, re-accounted from the ledger entries;
    and per site and round the run's epsilon composed up to that round (RDP, PLD)."""
    from components.common.create_only import STORE_ERRORS
    from components.privacy.accounting import epsilons
    from components.privacy.ledger import ledger_summary

    totals: dict[str, dict[str, Any]] = {}
    composed: dict[str, dict[int, tuple[float | None, float | None]]] = {}
    read = ledger_reader(stores, sites)
    found: dict[str, list[Any]] = {}
    unreachable: list[str] = []
    for site_id in sites:
        try:
            found[site_id] = read(site_id)
        except STORE_ERRORS as exc:
            unreachable.append(f"{stores.describe(site_id)} ({short_error(exc)})")
    if unreachable:
        raise RunError(
            f"run {run_id}: could not read the privacy ledger from "
            + "; ".join(unreachable)
            + ". No summary was written. What that store acknowledged stays in its data folder "
            "and the other sites' ledgers are intact; start the next run with a new --run-id "
            "once the store answers again."
        )
    for site_id, entries in found.items():
        delta = federation.policy_of(site_id).dp.delta
        mine = [e for e in entries if e.run_id == run_id]
        run_sum = ledger_summary(mine, delta)
        life = ledger_summary(entries, delta)
        totals[site_id] = {
            "epsilon": run_sum["lifetime_epsilon"],
            "epsilon_pld": run_sum["lifetime_epsilon_pld"],
            "run_entries": run_sum["entries"],
            "lifetime_epsilon": life["lifetime_epsilon"],
            "lifetime_epsilon_pld": life["lifetime_epsilon_pld"],
            "lifetime_entries": life["entries"],
            "not_proven_entries": run_sum["not_proven_entries"],
            "lifetime_not_proven_entries": life["not_proven_entries"],
            "delta": delta,
        }
        per_round: dict[int, tuple[float | None, float | None]] = {}
        for rnd in sorted({e.round for e in mine}):
            eps = epsilons([e.event for e in mine if e.round <= rnd], delta)
            per_round[rnd] = (_finite(eps.rdp), _finite(eps.pld))
        composed[site_id] = per_round
    return totals, composed


def short_error(exc: BaseException) -> str:
    """A one-line reason for a failed store request (urllib3 wraps the socket error)."""
    text = str(getattr(exc, "reason", None) or exc).splitlines()[0] if str(exc) else ""
    if "[Errno" in text:
        text = text[text.index("[Errno") :]
    return (text or type(exc).__name__)[:160]


def _finite(value: float) -> float | None:
    return float(value) if value == value and value not in (float("inf"), float("-inf")) else None


def fit_noise(
    federation: Federation,
    options: RunOptions,
    settings: dict[str, Any],
    data_paths: dict[str, dict[str, Path]],
):
    from pipelines.local_run.dpfit import fit_noise

    try:
        return fit_noise(
            {s: rows(data_paths[s]["train"]) for s in federation.sites},
            {
                s: (federation.policy_of(s).dp.epsilon_per_round, federation.policy_of(s).dp.delta)
                for s in federation.sites
            },
            batch_size=int(compiled_setting(settings, "batch_size")),
            local_epochs=int(compiled_setting(settings, "local_epochs")),
            rounds=options.rounds,
            floor=float(compiled_setting(settings, "noise_multiplier")),
        )
    except ValueError as exc:
        raise RunError(str(exc)) from None


def rows(path: Path) -> int:
    """Data rows of a CSV (header excluded) or Parquet file."""
    if path.suffix.lower() in (".parquet", ".pq"):
        import pyarrow.parquet as pq

        return int(pq.ParquetFile(path).metadata.num_rows)
    with path.open() as handle:
        return max(0, sum(1 for _ in handle) - 1)


def host_summary(
    options: RunOptions,
    federation: Federation,
    run_id: str,
    settings: dict[str, Any],
    artifacts: collect_mod.RunArtifacts,
    data_paths: dict[str, dict[str, Path]],
    ledgers: dict[str, dict[str, Any]],
    composed: dict[str, dict[int, tuple[float | None, float | None]]],
) -> dict[str, Any]:
    from components.common.global_model import read_global_model
    from components.report.executor import read_json_artifact
    from components.report.summary import build_summary
    from pipelines.local_run.scoring import centralized_baseline, load_pooled, score_tensors

    model_name = str(settings.get("model_name") or "")
    contract = federation.contracts[options.dataset]
    published = None  # federated_zscore: score as the sites scaled, with the published mean/std
    if contract.encoding.scaling == "federated_zscore" and artifacts.global_models:
        from components.datasets.federated_stats import published_scaling

        last = read_global_model(artifacts.global_models[max(artifacts.global_models)])
        published = published_scaling(contract, last.meta)
    # your own files (--data): no pooled test set on the host, so no test figures/baseline
    pooled = (
        load_pooled(
            contract,
            [p["train"] for s, p in data_paths.items() if s != "_test"],
            data_paths["_test"]["test"],
            published,
        )
        if "_test" in data_paths
        else None
    )
    test_scores: dict[int, dict[str, float]] = {}
    for rnd, folder in sorted(artifacts.global_models.items()):
        gm = read_global_model(folder)
        model_name = model_name or str(gm.meta.get("model_name"))
        if pooled is not None:
            test_scores[rnd] = score_tensors(model_name, gm.tensors, pooled)
    baseline = None
    if options.baseline and pooled is not None:
        local_epochs = int(compiled_setting(settings, "local_epochs"))
        baseline = centralized_baseline(
            model_name,
            pooled,
            epochs=options.rounds * local_epochs,
            batch_size=int(compiled_setting(settings, "batch_size")),
            learning_rate=float(compiled_setting(settings, "learning_rate")),
            seed=options.seed,
        )
    summary = build_summary(
        [read_json_artifact(p, "round.json") for _, p in sorted(artifacts.round_reports.items())],
        [
            read_json_artifact(p, "metrics.json")
            for _, per_site in sorted(artifacts.evaluations.items())
            for _, p in sorted(per_site.items())
        ],
        run_id=run_id,
        dataset=options.dataset,
        model_name=model_name,
        sites=list(federation.sites),
        test_accuracy=test_scores,
        baseline=baseline,
        ledgers=ledgers,
        composed=composed,
        dp_enabled=options.dp,
        validations={
            s: read_json_artifact(p, "summary.json") for s, p in artifacts.validations.items()
        },
        task=federation.contracts[options.dataset].task,
    )
    summary["ledgers"] = ledgers
    summary["settings"] = {
        "rounds": options.rounds,
        "split": options.split,
        "alpha": options.alpha if options.split == "dirichlet" else None,
        "seed": options.seed,
        "pipeline_parameters": settings,
    }
    return summary


def write_outputs(
    run_dir: Path, summary: dict[str, Any], artifacts: collect_mod.RunArtifacts
) -> None:
    from components.report.executor import write_report

    final_round = max(artifacts.global_models, default=None)
    if final_round is not None:
        target = run_dir / "global_model"
        if target.exists():
            shutil.rmtree(target)
        shutil.copytree(artifacts.global_models[final_round], target)
    write_report(summary, run_dir / "report.html", run_dir / "report.md")
    tmp = run_dir / "summary.json.tmp"
    tmp.write_text(json.dumps(summary, indent=1, sort_keys=True))
    tmp.replace(run_dir / "summary.json")  # last: its presence marks a finished run


def print_result(summary: dict[str, Any], run_dir: Path, emit: Callable[[str], None]) -> None:
    final = summary.get("final") or {}
    baseline = summary.get("baseline") or {}

    def pct(v: Any) -> str:
        return "–" if v is None else f"{100 * float(v):.2f}%"

    def num(v: Any) -> str:
        return "–" if v is None else f"{float(v):.4f}"

    emit("─" * 72)
    if summary.get("task") == "regression":
        emit(
            f"federated pooled-test R² {num(final.get('test_r2'))} "
            f"(MAE {num(final.get('test_mae'))}, RMSE {num(final.get('test_rmse'))}; "
            f"site holdouts R² {num(final.get('r2'))}); "
            f"centralized baseline R² {num(baseline.get('test_r2'))} "
            f"(MAE {num(baseline.get('test_mae'))}, RMSE {num(baseline.get('test_rmse'))})"
        )
    else:
        emit(
            f"federated test accuracy {pct(final.get('test_accuracy'))} "
            f"(site holdouts {pct(final.get('accuracy'))}); "
            f"centralized baseline {pct(baseline.get('test_accuracy'))}"
        )
    for site, entry in (summary.get("ledgers") or {}).items():
        rdp, pld = entry.get("epsilon"), entry.get("epsilon_pld")
        life = entry.get("lifetime_epsilon")
        unproven = entry.get("lifetime_not_proven_entries") or 0
        emit(
            f"  {site:<18} ε this run {_eps(rdp)} (RDP) / {_eps(pld)} (PLD); "
            f"lifetime ledger {_eps(life)}"
            + (f" (not proven: {unproven} shuffled-batch entries)" if unproven else "")
        )
    for site, m in sorted((final.get("membership") or {}).items()):
        eps = m.get("epsilon")
        emit(
            f"  {site:<18} membership audit: AUC {m['loss_threshold']['auc']:.3f} (loss) / "
            f"{m['logistic']['auc']:.3f} (logistic), advantage {m['advantage']:.3f} vs bound "
            f"{m['bound']:.4f} at ε {'∞' if eps is None else f'{eps:.2f}'} "
            f"({m['disclosure']})" + ("  ABOVE THE BOUND" if m["above_bound"] else "")
        )
    earlier = [
        a for a in summary.get("membership_above_bound") or [] if a["round"] != final.get("round")
    ]
    if earlier:
        emit(
            "  membership advantage above the bound in earlier rounds: "
            + "; ".join(
                f"{a['site']} round {a['round']} ({a['advantage']:.3f} > {a['bound']:.4f})"
                for a in earlier
            )
        )
    emit(f"outputs: {run_dir}/ (summary.json, report.html, global_model/, residency-report.md)")


def _eps(value: Any) -> str:
    return "–" if value is None else f"{float(value):.3f}"
