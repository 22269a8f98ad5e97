"""Time the TFF reference against the numpy/Keras FedAvg loop: `python -m pipelines.simulate.bench`.

Prints seconds per path for the example federation (3 sites, breast cancer, 3 rounds) and the
max absolute difference of their final weights. Figures only; no assertions.
"""

from __future__ import annotations

import time

import numpy as np


def main(rounds: int = 3) -> None:
    from components.train.models import initial_weights
    from pipelines.simulate.data import federated_data
    from pipelines.simulate.reference import accuracy, fedavg_reference
    from pipelines.simulate.spec import FederationSpec
    from pipelines.simulate.tff_runtime import run_tff

    spec = FederationSpec(
        "breast_cancer", ("clinic-boston", "hospital-berlin", "hospital-paris"), rounds=rounds
    )
    t0 = time.perf_counter()
    data = federated_data(spec.dataset, spec.site_ids, data_seed=spec.split_seed)
    init = initial_weights(spec.model_name, data.num_features, data.num_classes, spec.seed)
    t1 = time.perf_counter()
    tff_result = run_tff(spec, data, init)
    t2 = time.perf_counter()
    tff_again = run_tff(spec, data, init)
    t3 = time.perf_counter()
    reference = fedavg_reference(spec, data, init)
    t4 = time.perf_counter()
    diff = max(float(np.max(np.abs(tff_result.tensors[k] - reference[k]))) for k in reference)
    same = max(
        float(np.max(np.abs(tff_result.tensors[k] - tff_again.tensors[k]))) for k in reference
    )
    print(f"data + init                 {t1 - t0:6.2f} s")
    print(f"TFF, first run (tracing)    {t2 - t1:6.2f} s")
    print(f"TFF, second run             {t3 - t2:6.2f} s")
    print(f"numpy/Keras FedAvg loop     {t4 - t3:6.2f} s")
    print(f"max |TFF - loop|            {diff:.3g}")
    print(f"max |TFF run 1 - run 2|     {same:.3g}")
    print(
        f"test accuracy TFF {accuracy(spec, data, tff_result.tensors):.4f}, loop "
        f"{accuracy(spec, data, reference):.4f}"
    )


if __name__ == "__main__":
    main()
