"""`fedpipe simulate`: the federation of `sites/` in TensorFlow Federated's simulation runtime.

Same split, model, initial weights, rounds, local epochs and batch order as the pipeline, DP
off, FedAvg. Writes the final global model as named tensors (`model.npz`) plus `meta.json`,
for comparison with a pipeline run's global model.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from pipelines.cli import CommandError

HELP = "run the same federation in TFF's simulator (DP off, FedAvg)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--sites", type=Path, default=Path("sites"), help="sites/ folder")
    parser.add_argument("--policies", type=Path, default=Path("policies"), help="policies/ folder")
    parser.add_argument(
        "--dataset",
        choices=["breast_cancer", "digits"],
        default="breast_cancer",
        help="scikit-learn dataset split over the sites, as `fedpipe run --local --dataset`",
    )
    parser.add_argument("--rounds", type=int, default=3, help="rounds (default 3)")
    parser.add_argument("--model", default="logreg", help="registry model (default logreg)")
    parser.add_argument("--local-epochs", type=int, default=1, help="default 1")
    parser.add_argument("--batch-size", type=int, default=32, help="default 32")
    parser.add_argument("--learning-rate", type=float, default=0.1, help="client SGD, default 0.1")
    parser.add_argument(
        "--seed", type=int, default=0, help="model init, batch order and data split (default 0)"
    )
    parser.add_argument(
        "--data-seed", type=int, default=None, help="data split seed (default: --seed)"
    )
    parser.add_argument(
        "--run-id",
        default="simulate",
        help="run id whose batch order to reproduce (the train task seeds it with the run id)",
    )
    parser.add_argument(
        "--alpha", type=float, default=None, help="Dirichlet label skew (default: IID split)"
    )
    parser.add_argument(
        "--weighting",
        choices=("auto", "uniform", "num_examples"),
        default="auto",
        help="FedAvg weights; auto: num_examples only when every site's policy reveals"
        " export.reveal_num_examples, else uniform",
    )
    parser.add_argument(
        "--out", type=Path, default=Path("runs/simulate"), help="output folder (model.npz)"
    )
    parser.add_argument(
        "--compare",
        type=Path,
        default=None,
        metavar="MODEL_NPZ",
        help="a pipeline run's global model (runs/<run>/global_model/model.npz): print the max"
        " absolute difference and exit 1 when it exceeds --tolerance",
    )
    parser.add_argument("--tolerance", type=float, default=1e-4, help="default 1e-4")
    parser.add_argument(
        "--like",
        type=Path,
        default=None,
        metavar="RUN_DIR",
        help="reproduce a finished `fedpipe run --local --no-dp` run (runs/<id>): its settings"
        " from summary.json, compared with its global_model/model.npz (overrides the options"
        " above)",
    )


def max_abs_difference(a: dict, b: dict) -> float:
    """Largest |a - b| over all tensors; ValueError naming tensors that differ in name/shape."""
    import numpy as np

    if sorted(a) != sorted(b):
        raise ValueError(f"tensor names differ: {sorted(a)} vs {sorted(b)}")
    for name in a:
        if a[name].shape != b[name].shape:
            raise ValueError(f"tensor {name}: shape {a[name].shape} vs {b[name].shape}")
    return max(
        (float(np.max(np.abs(a[n].astype(np.float64) - b[n]))) for n in a if a[n].size),
        default=0.0,
    )


def choose_weighting(requested: str, reveal: list[bool]) -> str:
    """`auto` → "num_examples" when every site reveals its sample count, else "uniform"."""
    if requested != "auto":
        return requested
    return "num_examples" if reveal and all(reveal) else "uniform"


def run(args: argparse.Namespace) -> int:
    from pipelines.config.loader import ConfigError, load_federation
    from pipelines.simulate.reaper import install_reaper

    install_reaper()
    try:
        federation = load_federation(args.sites, args.policies)
    except ConfigError as exc:
        raise CommandError(str(exc)) from exc
    site_ids = tuple(federation.sites)  # sorted by id, as the loader returns them
    reveal = [federation.policy_of(s).export.reveal_num_examples for s in site_ids]

    from components.common.tensors import dump_tensors
    from pipelines.simulate.data import federated_data
    from pipelines.simulate.from_run import spec_from_summary
    from pipelines.simulate.reference import accuracy
    from pipelines.simulate.spec import FederationSpec
    from pipelines.simulate.tff_runtime import run_tff

    weighting = choose_weighting(args.weighting, reveal)
    try:
        if args.like is not None:
            summary = json.loads((args.like / "summary.json").read_text(encoding="utf-8"))
            spec = spec_from_summary(summary, site_ids, weighting)
            args.compare = args.compare or args.like / "global_model" / "model.npz"
        else:
            spec = FederationSpec(
                dataset=args.dataset,
                site_ids=site_ids,
                model_name=args.model,
                rounds=args.rounds,
                local_epochs=args.local_epochs,
                batch_size=args.batch_size,
                learning_rate=args.learning_rate,
                seed=args.seed,
                data_seed=args.data_seed,
                run_id=args.run_id,
                weighting=weighting,
                alpha=args.alpha,
            )
        other = [
            s.id for s in federation.sites.values() if s.data and s.data.contract != spec.dataset
        ]
        if other:  # as `fedpipe run --local --dataset` does, the chosen dataset replaces theirs
            print(f"note: dataset {spec.dataset} replaces the dataset of {', '.join(other)}")
        data = federated_data(
            spec.dataset, spec.site_ids, data_seed=spec.split_seed, alpha=spec.alpha
        )
    except (OSError, ValueError, KeyError) as exc:
        raise CommandError(str(exc)) from exc
    result = run_tff(spec, data)  # TFF's worker binary is reaped at exit (atexit)
    acc = accuracy(spec, data, result.tensors)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "model.npz").write_bytes(dump_tensors(result.tensors))
    meta = {
        "spec": {**spec.__dict__, "site_ids": list(spec.site_ids)},
        "rounds": result.rounds,
        "test_accuracy": acc,
        "test_examples": len(data.test.y),
        "site_examples": {s: len(d.y) for s, d in data.sites.items()},
    }
    (args.out / "meta.json").write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
    for i, r in enumerate(result.rounds, 1):
        shown = ", ".join(f"{k} {v:.4g}" for k, v in sorted(r.items()))
        print(f"round {i}: {shown}")
    print(
        f"TFF FedAvg ({spec.weighting}) over {', '.join(site_ids)}: pooled test accuracy"
        f" {acc:.4f} on {len(data.test.y)} examples; wrote {args.out / 'model.npz'}"
    )
    if args.compare is None:
        return 0
    from components.common.tensors import TensorFormatError, load_tensors

    try:
        other = load_tensors(args.compare.read_bytes())
        diff = max_abs_difference(result.tensors, other)
    except (OSError, TensorFormatError, ValueError) as exc:
        raise CommandError(f"--compare {args.compare}: {exc}") from exc
    verdict = "agree" if diff <= args.tolerance else "DIFFER"
    print(f"max |TFF - {args.compare}| = {diff:.3g}: {verdict} (tolerance {args.tolerance:g})")
    return 0 if diff <= args.tolerance else 1
