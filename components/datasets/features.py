"""From a site table to model inputs: checked arrays and non-leaking standardization (pure).

Standardization (the contract's `scaling`):

* digits, "fixed": x / 16.0, the known pixel range; needs no data at all.
* breast_cancer, "site_zscore": (x - mean) / std per feature, mean and std of the site's own
  *training* table (population std; a constant feature gets std 1). The same site scaler is
  applied to that site's holdout. It is fitted inside the site's task and never leaves it, and
  test/holdout rows never enter it, so nothing leaks across sites or from evaluation data.
  Train and evaluate both call `fit_scaler(contract, X_train)`; a pooled test set (simulation,
  benchmarks) can be scored through any site's scaler or one fitted on the union of training
  tables.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from components.datasets.contracts import LABEL, DataContract


class DataError(ValueError):
    """A site table that breaks its data contract; the message names site and check.

    Messages never contain cell values (they may leave the site as an abstention reason).
    """

    def __init__(self, site_id: str, check: str, detail: str) -> None:
        self.site_id = site_id
        self.check = check
        self.detail = detail
        super().__init__(f"site {site_id}: data check {check!r} failed: {detail}")


def frame_to_arrays(
    contract: DataContract, frame: pd.DataFrame, site_id: str, *, min_rows: int = 1
) -> tuple[np.ndarray, np.ndarray]:
    """(X float64 [n, num_features] in contract column order, y int64 [n]) or DataError.

    Checks: columns present, feature/label columns numeric, no NaN/inf, integral labels in the
    contract's label set, at least `min_rows` rows. Extra columns are ignored here (the GX suite
    reports them).
    """
    missing = [c for c in contract.columns if c not in frame.columns]
    if missing:
        shown = ", ".join(missing[:5]) + (
            f" (+{len(missing) - 5} more)" if len(missing) > 5 else ""
        )
        raise DataError(site_id, "columns_present", f"missing column(s): {shown}")
    if len(frame) < min_rows:
        raise DataError(site_id, "min_rows", f"{len(frame)} rows, at least {min_rows} required")
    bad_types = [
        c
        for c in contract.columns
        if not pd.api.types.is_numeric_dtype(frame[c]) or pd.api.types.is_bool_dtype(frame[c])
    ]
    if bad_types:
        raise DataError(site_id, "numeric_dtype", f"non-numeric column(s): {', '.join(bad_types)}")
    x = frame[contract.feature_names].to_numpy(dtype=np.float64)
    if not np.isfinite(x).all():
        cols = [contract.feature_names[j] for j in np.flatnonzero(~np.isfinite(x).all(axis=0))]
        raise DataError(site_id, "features_finite", f"NaN or infinite values in {', '.join(cols)}")
    raw_y = frame[LABEL].to_numpy(dtype=np.float64)
    if not np.isfinite(raw_y).all():
        n_bad = int((~np.isfinite(raw_y)).sum())
        raise DataError(site_id, "label_not_null", f"{n_bad} missing/NaN label(s)")
    if not np.all(raw_y == np.round(raw_y)):
        raise DataError(site_id, "label_integral", "non-integer label value(s)")
    y = raw_y.astype(np.int64)
    outside = ~np.isin(y, np.asarray(contract.labels))
    if outside.any():
        raise DataError(
            site_id,
            "label_in_set",
            f"{int(outside.sum())} label(s) outside the label set of {contract.name}",
        )
    return x, y


@dataclass(frozen=True)
class Scaler:
    """x -> (x - center) / scale, per feature (arrays of shape [num_features])."""

    center: np.ndarray
    scale: np.ndarray

    def transform(self, x: np.ndarray) -> np.ndarray:
        """Scaled float32 copy of `x` [n, num_features]."""
        return ((np.asarray(x, dtype=np.float64) - self.center) / self.scale).astype(np.float32)


def fit_scaler(contract: DataContract, x_train: np.ndarray) -> Scaler:
    """The contract's scaler; for "site_zscore" fitted on the site's training features only."""
    n_features = contract.num_features
    if contract.scaling == "fixed":
        return Scaler(
            np.full(n_features, contract.fixed_center), np.full(n_features, contract.fixed_scale)
        )
    x = np.asarray(x_train, dtype=np.float64)
    if x.ndim != 2 or x.shape[1] != n_features or x.shape[0] == 0:
        raise ValueError(
            f"{contract.name}: scaler needs training features of shape [n>0, {n_features}], "
            f"got {x.shape}"
        )
    std = x.std(axis=0)
    return Scaler(x.mean(axis=0), np.where(std > 0, std, 1.0))
