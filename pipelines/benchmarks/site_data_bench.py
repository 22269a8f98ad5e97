"""Site data stages: GX import, suite validation per site table, numpy evaluation.

Prints, per dataset: table rows, expectations, median wall time of `run_suite` (GX ephemeral
context + validation) over REPEATS runs, and median time of the numpy forward pass + metrics on
the pooled test set. Target: a site table validates in <= 10 s after the import (2-core CI machine) (a round's
validate task must not dominate it). Exit 1 when the target is missed.
"""

from __future__ import annotations

import sys
import time

import numpy as np

from pipelines.benchmarks.timing import median_seconds

REPEATS = 3
TARGET_VALIDATE_SECONDS = 10.0
SITES = ["hospital-berlin", "hospital-paris", "clinic-boston"]


def main() -> int:
    start = time.perf_counter()
    import great_expectations  # noqa: F401

    print(f"import great_expectations: {time.perf_counter() - start:.2f} s")
    from components.datasets.features import fit_scaler, frame_to_arrays
    from components.datasets.prepare import load_frame, split_federation
    from components.evaluate.forward import predict_proba
    from components.evaluate.metrics import classification_metrics
    from components.validate.suite import expectation_specs, run_suite
    from pipelines.config.loader import contract_by_name

    print(f"{'dataset':>14} {'rows':>5} {'checks':>6} {'validate s':>10} {'evaluate ms':>11}")
    worst = 0.0
    for dataset in ("breast_cancer", "digits"):
        contract = contract_by_name(dataset)
        fed = split_federation(load_frame(contract), contract, SITES, np.random.default_rng(0))
        train = fed.sites[SITES[0]].train
        validate_s = median_seconds(lambda c=contract, t=train: run_suite(c, t), REPEATS)
        worst = max(worst, validate_s)
        x, _ = frame_to_arrays(contract, train, SITES[0])
        xt, yt = frame_to_arrays(contract, fed.test, "pooled-test")
        z = fit_scaler(contract, x).transform(xt)
        rng = np.random.default_rng(1)
        tensors = {
            "dense/kernel": rng.normal(size=(contract.num_features, contract.num_classes)),
            "dense/bias": np.zeros(contract.num_classes),
        }

        def evaluate(c=contract, z=z, yt=yt, t=tensors) -> None:
            probs = predict_proba("logreg", t, z, c.num_classes)
            classification_metrics(yt, probs, list(c.labels), 5)

        evaluate_s = median_seconds(evaluate, REPEATS)
        print(
            f"{dataset:>14} {len(train):>5} {len(expectation_specs(contract)):>6} "
            f"{validate_s:>10.3f} {evaluate_s * 1000:>11.2f}",
            flush=True,
        )
    ok = worst <= TARGET_VALIDATE_SECONDS
    print(
        f"target: validate <= {TARGET_VALIDATE_SECONDS:.1f} s per table: "
        f"{'met' if ok else 'MISSED'} (worst {worst:.2f} s)"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
