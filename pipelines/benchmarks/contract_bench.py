"""Contract → GX suite build time and validation time per 10k rows at 50 columns.

A synthetic 50-column contract (35 float, 5 int, 5 bool, 5 category columns with 4
categories, 5 of them nullable) and a conforming table of 10,000 rows (seeded). Prints the
median of 3 runs of: building the expectation specs from the contract (pure), building the GX
suite from them (ephemeral context), running the whole validation (`run_suite`: context,
suite and validation of the 10k rows), and the array conversion (`frame_to_arrays`).
Figures only; no target (timing assertions do not belong in tests).
"""

from __future__ import annotations

import os
import time

import numpy as np
import pandas as pd

from pipelines.benchmarks.timing import median_seconds

ROWS = 10_000
REPEATS = 3


def synthetic_contract():
    from components.domain.contract import DataContract

    columns = []
    for i in range(35):
        nullable = i < 5
        column = {"name": f"f{i}", "type": "float", "range": [0, 100]}
        if nullable:
            column |= {"nullable": True, "impute": 50}
        columns.append(column)
    columns += [{"name": f"i{i}", "type": "int", "range": [0, 1000]} for i in range(5)]
    columns += [{"name": f"b{i}", "type": "bool"} for i in range(5)]
    columns += [
        {"name": f"c{i}", "type": "category", "categories": ["a", "b", "c", "d"]} for i in range(5)
    ]
    return DataContract.parse_obj(
        {
            "apiVersion": "fedpipe.dev/v1",
            "kind": "DataContract",
            "name": "bench50",
            "columns": columns,
            "target": {"task": "binary", "classes": [0, 1]},
            "rows": {"min_train": 100, "min_holdout": 10},
            "encoding": {"scaling": "fixed", "center": 50, "scale": 50},
        }
    )


def synthetic_table(contract, rows: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    data: dict[str, object] = {}
    for c in contract.columns:
        if c.type == "float":
            values = rng.uniform(0, 100, rows)
            if c.nullable:
                values[rng.random(rows) < 0.05] = np.nan
            data[c.name] = values
        elif c.type == "int":
            data[c.name] = rng.integers(0, 1001, rows)
        elif c.type == "bool":
            data[c.name] = rng.random(rows) < 0.5
        else:
            data[c.name] = rng.choice(["a", "b", "c", "d"], rows)
    data["label"] = rng.integers(0, 2, rows)
    return pd.DataFrame(data)


def main() -> int:
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    start = time.perf_counter()
    import great_expectations as gx

    print(f"import great_expectations: {time.perf_counter() - start:.2f} s")
    from components.datasets.features import frame_to_arrays
    from components.validate.suite import expectation_specs, run_suite

    contract = synthetic_contract()
    table = synthetic_table(contract, ROWS)
    specs = expectation_specs(contract)
    gx.get_context(mode="ephemeral")  # expectation objects need an active context

    def build_suite() -> None:
        suite = gx.ExpectationSuite(name="bench")
        for spec in expectation_specs(contract):
            suite.add_expectation(getattr(gx.expectations, spec.gx_class)(**spec.kwargs))

    specs_s = median_seconds(lambda: expectation_specs(contract), REPEATS)
    suite_s = median_seconds(build_suite, REPEATS)
    outcomes = run_suite(contract, table)
    failed = [o.name for o in outcomes if not o.success]
    if failed:
        print(f"the conforming table failed {failed}")
        return 1
    validate_s = median_seconds(lambda: run_suite(contract, table), REPEATS)
    arrays_s = median_seconds(lambda: frame_to_arrays(contract, table, "bench"), REPEATS)
    print(
        f"contract: {len(contract.columns)} columns ({contract.num_features} model inputs), "
        f"{len(specs)} expectations; table {ROWS} rows"
    )
    print(f"contract -> expectation specs: {specs_s * 1000:.2f} ms")
    print(f"contract -> GX suite (specs + expectation objects): {suite_s * 1000:.1f} ms")
    print(
        f"validation (context + suite + run) per 10k rows: {validate_s:.2f} s "
        f"({validate_s / ROWS * 1e6:.0f} µs per row)"
    )
    print(f"array conversion (checks, impute, one-hot) per 10k rows: {arrays_s * 1000:.1f} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
