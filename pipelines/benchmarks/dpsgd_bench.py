"""Site training and privacy accounting: what one `train` task spends on TF and dp-accounting.

Prints, per (model, dataset): site rows, steps, median wall time of one local DP-SGD training
(`components.train.dpsgd.train_dp_sgd`, build + trace + per-example-gradient steps) with
Poisson sampling (the default) and shuffled fixed-size batches (the explicit option);
then RDP and PLD accounting time for a site ledger of 1, 10 and 50 entries of two different
mechanisms. Target: one logreg training on a breast-cancer site share <= 10 s on the 2-core CI
machine (a round's train task must not dominate it). Exit 1 when the target is missed.
"""

from __future__ import annotations

import sys
import time

import numpy as np

from pipelines.benchmarks.timing import median_seconds

REPEATS = 3
TARGET_TRAIN_SECONDS = 10.0
SITES = ["hospital-berlin", "hospital-paris", "clinic-boston"]


def main() -> int:
    start = time.perf_counter()
    import tensorflow  # noqa: F401

    print(f"import tensorflow: {time.perf_counter() - start:.2f} s")
    import components.train.dpsgd as dpsgd
    from components.datasets.features import fit_scaler, frame_to_arrays
    from components.datasets.prepare import load_frame, split_federation
    from components.privacy.accounting import DpSgdEvent, pld_epsilon, rdp_epsilon
    from components.train.models import initial_weights
    from pipelines.config.loader import contract_by_name

    print(
        f"{'model':>7} {'dataset':>14} {'rows':>5} {'steps':>5} {'Poisson s':>9} {'shuffle s':>12}"
    )
    logreg_s = 0.0
    for model, dataset in (
        ("logreg", "breast_cancer"),
        ("mlp", "breast_cancer"),
        ("cnn", "digits"),
    ):
        contract = contract_by_name(dataset)
        fed = split_federation(load_frame(contract), contract, SITES, np.random.default_rng(0))
        x, y = frame_to_arrays(contract, fed.sites[SITES[0]].train, SITES[0])
        x = fit_scaler(contract, x).transform(x)
        w0 = initial_weights(model, contract.num_features, contract.num_classes, 0)
        config = dpsgd.DpSgdConfig(16, 1, 0.5, 1.5, 1.0)

        def once(w0=w0, x=x, y=y, c=contract, m=model, config=config):
            return dpsgd.train_dp_sgd(
                m, w0, x, y, c.num_classes, config, sampling_seed=0, noise_seed=0
            )

        def shuffled(w0=w0, x=x, y=y, c=contract, m=model, config=config):
            cfg = dpsgd.DpSgdConfig(16, 1, 0.5, 1.5, 1.0, sampling=dpsgd.SAMPLING_SHUFFLE)
            return dpsgd.train_dp_sgd(
                m, w0, x, y, c.num_classes, cfg, sampling_seed=0, noise_seed=0
            )

        steps = once().steps
        used = median_seconds(once, REPEATS)
        vectorized = median_seconds(shuffled, REPEATS)
        if model == "logreg":
            logreg_s = used
        print(f"{model:>7} {dataset:>14} {len(y):>5} {steps:>5} {used:>9.2f} {vectorized:>12.2f}")

    print(f"{'entries':>7} {'RDP ms':>8} {'PLD ms':>8} {'eps RDP':>8} {'eps PLD':>8}")
    for count in (1, 10, 50):
        events = [
            DpSgdEvent(16 / 122, 1.5, 7) if i % 2 else DpSgdEvent(16 / 122, 1.2, 7)
            for i in range(count)
        ]
        t0 = time.perf_counter()
        eps_rdp = rdp_epsilon(events, 1e-5)
        t1 = time.perf_counter()
        eps_pld = pld_epsilon(events, 1e-5)
        t2 = time.perf_counter()
        print(
            f"{count:>7} {1000 * (t1 - t0):>8.1f} {1000 * (t2 - t1):>8.1f} "
            f"{eps_rdp:>8.3f} {eps_pld:>8.3f}"
        )

    ok = logreg_s <= TARGET_TRAIN_SECONDS
    print(
        f"target: logreg training <= {TARGET_TRAIN_SECONDS:.0f} s: {logreg_s:.2f} s "
        f"({'ok' if ok else 'MISSED'})"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
