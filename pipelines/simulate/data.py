"""The federation's data as both paths see it: split per site, scaled per site (no TF).

Uses the pipeline's own preparation (`components.datasets.prepare.split_federation`, seeded
by `numpy.random.default_rng(data_seed)`) and the site-side feature code
(`components.datasets.features`: contract checks, site z-score fitted on the site's training
table), so each site trains on exactly the arrays its pipeline task would.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class SiteArrays:
    """A site's scaled training features (float32 [n, f]) and labels (int64 [n])."""

    x: np.ndarray
    y: np.ndarray


@dataclass(frozen=True)
class FederatedData:
    """Per-site training arrays, a pooled test set (scaled by a scaler fitted on the union of
    the sites' training tables) and the contract shapes."""

    sites: dict[str, SiteArrays]
    test: SiteArrays
    num_features: int
    num_classes: int


def federated_data(
    dataset: str,
    site_ids: Sequence[str],
    *,
    data_seed: int,
    alpha: float | None = None,
    test_fraction: float = 0.2,
    holdout_fraction: float = 0.2,
) -> FederatedData:
    """Split `dataset` over `site_ids` exactly as `components.datasets.prepare.prepare_local`."""
    from components.datasets.features import fit_scaler, frame_to_arrays
    from components.datasets.prepare import load_frame, split_federation
    from pipelines.config.loader import contract_by_name

    contract = contract_by_name(dataset)
    federation = split_federation(
        load_frame(contract),
        contract,
        list(site_ids),
        np.random.default_rng(data_seed),
        test_fraction=test_fraction,
        holdout_fraction=holdout_fraction,
        alpha=alpha,
    )
    sites: dict[str, SiteArrays] = {}
    raw_train: list[np.ndarray] = []
    for site_id in site_ids:
        x, y = frame_to_arrays(contract, federation.sites[site_id].train, site_id)
        raw_train.append(x)
        sites[site_id] = SiteArrays(fit_scaler(contract, x).transform(x), y)
    x_test, y_test = frame_to_arrays(contract, federation.test, "test")
    pooled = fit_scaler(contract, np.concatenate(raw_train))
    return FederatedData(
        sites,
        SiteArrays(pooled.transform(x_test), y_test),
        contract.num_features,
        contract.num_classes,
    )
