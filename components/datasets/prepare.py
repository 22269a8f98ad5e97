"""Split a table over sites: pooled test set + per-site train/holdout (the bundled examples come
from scikit-learn's `load_<contract name>`, checked against the contract).

Pure functions take a `numpy.random.Generator`; `write_federation` is the small file edge.
The files hold raw (unscaled) values, exactly what a site would own; scaling happens inside the
site's tasks (`components.datasets.features`). No downloads: `load_breast_cancer` and
`load_digits` ship with scikit-learn.

Split order (all from one generator): (1) a stratified pooled test set (`test_fraction` of each
class); (2) the rest over sites, IID (shuffled, near-equal sizes) or label-skewed with per-class
site proportions drawn from Dirichlet(alpha) (smaller alpha = more skew; classification only);
(3) inside each site a random holdout of `holdout_fraction` (at least one row). A regression
target is not stratified (one group).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from components.domain.contract import DataContract

TRAIN_FILE = "train.csv"
HOLDOUT_FILE = "holdout.csv"
TEST_FILE = "test.csv"


def _snake(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")


def load_frame(contract: DataContract) -> pd.DataFrame:
    """scikit-learn's bundled `load_<contract.name>` (raw values where the loader offers
    `scaled=False`) as a frame with the contract's columns; RuntimeError when the names differ
    from the contract. Integer columns become int64."""
    import inspect

    from sklearn import datasets as skd  # imported here: only preparation needs scikit-learn

    loader = getattr(skd, f"load_{contract.name}", None)
    if loader is None:
        raise RuntimeError(
            f"{contract.name}: scikit-learn has no bundled dataset load_{contract.name}; "
            "bring your own files (fedpipe run --local --data DIR)"
        )
    kwargs = {"scaled": False} if "scaled" in inspect.signature(loader).parameters else {}
    bunch = loader(**kwargs)
    names = [_snake(n) for n in bunch.feature_names]
    if names != contract.feature_names:
        raise RuntimeError(
            f"{contract.name}: scikit-learn's feature names differ from the contract"
        )
    frame = pd.DataFrame(bunch.data, columns=names)
    for column in contract.columns:
        integral = column.type == "int" or (
            column.type == "category" and all(isinstance(c, int) for c in column.categories or [])
        )
        if integral:
            frame[column.name] = frame[column.name].astype(np.int64)
    target = np.asarray(bunch.target)
    frame[contract.label] = (
        target.astype(np.float64) if contract.is_regression else target.astype(np.int64)
    )
    return frame


def strata(frame: pd.DataFrame, contract: DataContract) -> np.ndarray:
    """Stratification groups: the class label, or one group for a regression target."""
    if contract.is_regression:
        return np.zeros(len(frame), dtype=np.int64)
    return frame[contract.label].to_numpy()


def stratified_test_split(
    labels: np.ndarray, test_fraction: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """(rest_idx, test_idx), sorted; round(test_fraction * n_c) rows of each class go to test."""
    if not 0.0 <= test_fraction < 1.0:
        raise ValueError(f"test_fraction must be in [0, 1), got {test_fraction}")
    test: list[np.ndarray] = []
    for c in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == c))
        test.append(idx[: int(round(test_fraction * len(idx)))])
    test_idx = np.sort(np.concatenate(test)) if test else np.zeros(0, np.int64)
    rest_idx = np.setdiff1d(np.arange(len(labels)), test_idx)
    return rest_idx, test_idx


def iid_partition(n: int, n_sites: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Positions 0..n-1 shuffled and cut into `n_sites` near-equal parts (sorted)."""
    if n_sites < 1:
        raise ValueError("n_sites must be >= 1")
    return [np.sort(p) for p in np.array_split(rng.permutation(n), n_sites)]


def dirichlet_partition(
    labels: np.ndarray,
    n_sites: int,
    alpha: float,
    rng: np.random.Generator,
    *,
    min_rows: int = 10,
    max_attempts: int = 100,
) -> list[np.ndarray]:
    """Label-skewed partition of positions: for each class, site shares ~ Dirichlet(alpha).

    Redraws (same generator) until every site has >= `min_rows` rows; ValueError after
    `max_attempts` draws (lower `min_rows` or raise `alpha`).
    """
    if alpha <= 0:
        raise ValueError(f"alpha must be > 0, got {alpha}")
    if n_sites < 1:
        raise ValueError("n_sites must be >= 1")
    classes = np.unique(labels)
    for _ in range(max_attempts):
        parts: list[list[np.ndarray]] = [[] for _ in range(n_sites)]
        for c in classes:
            idx = rng.permutation(np.flatnonzero(labels == c))
            shares = rng.dirichlet(np.full(n_sites, alpha))
            cuts = np.round(np.cumsum(shares)[:-1] * len(idx)).astype(int)
            for site, chunk in enumerate(np.split(idx, cuts)):
                parts[site].append(chunk)
        result = [np.sort(np.concatenate(p)) for p in parts]
        if min(len(p) for p in result) >= min_rows:
            return result
    raise ValueError(
        f"Dirichlet(alpha={alpha}) partition over {n_sites} sites left a site with fewer than "
        f"{min_rows} rows in {max_attempts} draws"
    )


def contract_site_rows(contract: DataContract, holdout_fraction: float) -> int:
    """Fewest rows a site needs so its train split meets `min_rows` and its holdout split
    `min_holdout_rows` of the data contract."""
    return max(
        math.ceil(contract.min_rows / (1.0 - holdout_fraction)),
        math.ceil(contract.min_holdout_rows / holdout_fraction),
    )


@dataclass(frozen=True)
class SiteSplit:
    """One site's own data: training table and holdout table (raw values)."""

    train: pd.DataFrame
    holdout: pd.DataFrame


@dataclass(frozen=True)
class FederatedSplit:
    """A dataset split over sites, plus the pooled test set no site holds."""

    dataset: str
    test: pd.DataFrame
    sites: dict[str, SiteSplit]


def split_federation(
    frame: pd.DataFrame,
    contract: DataContract,
    site_ids: Sequence[str],
    rng: np.random.Generator,
    *,
    test_fraction: float = 0.2,
    holdout_fraction: float = 0.2,
    alpha: float | None = None,
    min_site_rows: int | None = None,
) -> FederatedSplit:
    """Split `frame` (the contract's columns) over `site_ids`; alpha None = IID, else Dirichlet.

    Dirichlet draws are repeated until every site has `min_site_rows` rows; default: enough
    for the contract (`contract_site_rows`), so every site's train and holdout tables pass.
    """
    if len(set(site_ids)) != len(site_ids) or not site_ids:
        raise ValueError(f"site_ids must be non-empty and unique, got {list(site_ids)}")
    if not 0.0 < holdout_fraction < 1.0:
        raise ValueError(f"holdout_fraction must be in (0, 1), got {holdout_fraction}")
    labels = strata(frame, contract)
    rest_idx, test_idx = stratified_test_split(labels, test_fraction, rng)
    if alpha is None:
        parts = iid_partition(len(rest_idx), len(site_ids), rng)
    else:
        if contract.is_regression:
            raise ValueError(
                f"{contract.name}: a Dirichlet label-skew split needs a classification target"
            )
        if min_site_rows is None:
            min_site_rows = contract_site_rows(contract, holdout_fraction)
        parts = dirichlet_partition(
            labels[rest_idx], len(site_ids), alpha, rng, min_rows=min_site_rows
        )
    sites: dict[str, SiteSplit] = {}
    for site_id, part in zip(site_ids, parts, strict=True):
        rows = rng.permutation(rest_idx[part])
        n_hold = max(1, int(round(holdout_fraction * len(rows))))
        if n_hold >= len(rows):
            raise ValueError(f"site {site_id}: {len(rows)} rows are too few for a holdout split")
        holdout, train = np.sort(rows[:n_hold]), np.sort(rows[n_hold:])
        sites[site_id] = SiteSplit(
            frame.iloc[train].reset_index(drop=True), frame.iloc[holdout].reset_index(drop=True)
        )
    return FederatedSplit(contract.name, frame.iloc[test_idx].reset_index(drop=True), sites)


def table_to_csv_bytes(frame: pd.DataFrame) -> bytes:
    """CSV with header, no index; floats written round-trip exact."""
    return frame.to_csv(index=False).encode()


def write_federation(federation: FederatedSplit, out_dir: str | Path) -> dict[str, dict[str, Path]]:
    """Write `<out>/<site>/train.csv`, `<out>/<site>/holdout.csv` and `<out>/test.csv`.

    Returns {site_id: {"train": path, "holdout": path}} plus {"_test": {"test": path}}.
    """
    out = Path(out_dir)
    paths: dict[str, dict[str, Path]] = {}
    for site_id, split in federation.sites.items():
        site_dir = out / site_id
        site_dir.mkdir(parents=True, exist_ok=True)
        train, holdout = site_dir / TRAIN_FILE, site_dir / HOLDOUT_FILE
        train.write_bytes(table_to_csv_bytes(split.train))
        holdout.write_bytes(table_to_csv_bytes(split.holdout))
        paths[site_id] = {"train": train, "holdout": holdout}
    out.mkdir(parents=True, exist_ok=True)
    test = out / TEST_FILE
    test.write_bytes(table_to_csv_bytes(federation.test))
    paths["_test"] = {"test": test}
    return paths


def prepare_local(
    contract: DataContract,
    site_ids: Sequence[str],
    out_dir: str | Path,
    *,
    seed: int,
    alpha: float | None = None,
    test_fraction: float = 0.2,
    holdout_fraction: float = 0.2,
) -> dict[str, dict[str, Path]]:
    """Load, split with `numpy.random.default_rng(seed)` and write (see `write_federation`)."""
    federation = split_federation(
        load_frame(contract),
        contract,
        site_ids,
        np.random.default_rng(seed),
        test_fraction=test_fraction,
        holdout_fraction=holdout_fraction,
        alpha=alpha,
    )
    return write_federation(federation, out_dir)
