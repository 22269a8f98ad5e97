"""From a site table to model inputs: checked, encoded arrays and scaling (pure).

Everything follows the data contract (`components.domain.contract`):

* `frame_to_arrays`: the contract's columns, checked (presence, type, nulls, range,
  categories, target), nulls imputed with the column's fixed value, then encoded: numeric as
  is, bool as 0/1, category one-hot in the contract's order. Returns the unscaled inputs
  [n, num_features] and the target: class index (classification, in `target.classes` order)
  or the number in its own unit (regression).
* `fit_scaler`: the contract's scaling of the numeric inputs. `fixed` uses the contract's
  constants (no data); `site_zscore` fits mean/std on the site's own *training* rows inside the
  site's task (refused with DP on: `components.domain.contract.check_private_scaling`);
  `federated_zscore` takes the global mean/std published after the DP statistics round
  (`components.datasets.federated_stats`).
  One-hot and bool inputs are never scaled.
* `scale_target` / `unscale_target`: a regression model predicts (y - center) / scale with the
  contract's fixed target constants; metrics are reported in the target's own unit.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from components.domain.contract import Column, DataContract


class DataError(ValueError):
    """A site table that breaks its data contract; the message names site, check and column.

    Messages never contain cell values (they may leave the site as an abstention reason).
    """

    def __init__(self, site_id: str, check: str, detail: str) -> None:
        self.site_id = site_id
        self.check = check
        self.detail = detail
        super().__init__(f"site {site_id}: data check {check!r} failed: {detail}")


def _shown(names: list[str], limit: int = 5) -> str:
    more = f" (+{len(names) - limit} more)" if len(names) > limit else ""
    return ", ".join(names[:limit]) + more


def _category_keys(series: pd.Series) -> pd.Series:
    """Cells as strings for category matching; integral floats (1.0 from a column with nulls)
    compare as their integer."""
    if pd.api.types.is_float_dtype(series):
        values = series.to_numpy(dtype=np.float64)
        if np.all(values == np.round(values)):
            return pd.Series(values.astype(np.int64), index=series.index).astype(str)
    return series.astype(str)


def _numeric(series: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series)


def encode_column(column: Column, series: pd.Series, site_id: str) -> np.ndarray:
    """One column checked and encoded: [n, k] float64 (k = 1, or the categories for one-hot).

    DataError checks: `type`, `not_null`, `in_range`, `in_categories` (each naming the column).
    """
    name = column.name
    nulls = series.isna().to_numpy()
    if nulls.any() and not column.nullable:
        raise DataError(site_id, "not_null", f"column {name}: {int(nulls.sum())} empty cell(s)")
    present = series[~nulls]
    if column.type in ("float", "int"):
        if not _numeric(series) and len(present):
            raise DataError(site_id, "type", f"column {name}: {column.type} expected, not numbers")
        values = pd.to_numeric(series, errors="coerce").to_numpy(dtype=np.float64)
        if nulls.any():
            values = np.where(nulls, float(column.impute), values)  # type: ignore[arg-type]
        if not np.isfinite(values).all():
            raise DataError(site_id, "type", f"column {name}: infinite value(s)")
        if column.type == "int" and not np.all(values == np.round(values)):
            raise DataError(site_id, "type", f"column {name}: int expected, found fractions")
        low, high = column.range  # type: ignore[misc]
        outside = (values < low) | (values > high)
        if outside.any():
            raise DataError(
                site_id,
                "in_range",
                f"column {name}: {int(outside.sum())} value(s) outside [{low:g}, {high:g}]",
            )
        return values[:, None]
    if column.type == "bool":
        as_bool = present.map(lambda v: isinstance(v, bool | np.bool_)).all()
        if pd.api.types.is_bool_dtype(series) or present.empty or as_bool:
            cells = series.astype(object).to_numpy()
            values = np.where(nulls, bool(column.impute), cells).astype(np.float64)
        elif _numeric(series) and present.isin([0, 1]).all():
            values = series.fillna(float(bool(column.impute))).to_numpy(dtype=np.float64)
        else:
            raise DataError(site_id, "type", f"column {name}: bool expected (true/false or 0/1)")
        return values[:, None]
    # category
    cats = [str(c) for c in column.categories or []]
    keys = _category_keys(present)
    unknown = ~keys.isin(cats)
    if unknown.any():
        raise DataError(
            site_id,
            "in_categories",
            f"column {name}: {int(unknown.sum())} value(s) not among its {len(cats)} categories",
        )
    full = pd.Series(str(column.impute), index=series.index, dtype=object)
    full[~nulls] = keys
    return (full.to_numpy()[:, None] == np.asarray(cats, dtype=object)[None, :]).astype(np.float64)


def target_array(contract: DataContract, series: pd.Series, site_id: str) -> np.ndarray:
    """Class indices (int64, `target.classes` order) or regression values (float64)."""
    name = contract.label
    if series.isna().any():
        raise DataError(
            site_id, "label_not_null", f"target {name}: {int(series.isna().sum())} empty cell(s)"
        )
    if not _numeric(series):
        raise DataError(site_id, "type", f"target {name}: numbers expected")
    raw = series.to_numpy(dtype=np.float64)
    if not np.isfinite(raw).all():
        raise DataError(site_id, "type", f"target {name}: infinite value(s)")
    if contract.is_regression:
        low, high = contract.target.range  # type: ignore[misc]
        outside = (raw < low) | (raw > high)
        if outside.any():
            raise DataError(
                site_id,
                "in_range",
                f"target {name}: {int(outside.sum())} value(s) outside [{low:g}, {high:g}]",
            )
        return raw
    if not np.all(raw == np.round(raw)):
        raise DataError(site_id, "label_integral", f"target {name}: non-integer label value(s)")
    labels = np.asarray(contract.labels, dtype=np.int64)
    y = raw.astype(np.int64)
    outside = ~np.isin(y, labels)
    if outside.any():
        raise DataError(
            site_id,
            "label_in_set",
            f"target {name}: {int(outside.sum())} label(s) outside the classes of "
            f"{contract.name}",
        )
    index = {int(v): i for i, v in enumerate(labels)}
    return np.asarray([index[int(v)] for v in y], dtype=np.int64)


def frame_to_arrays(
    contract: DataContract, frame: pd.DataFrame, site_id: str, *, min_rows: int = 1
) -> tuple[np.ndarray, np.ndarray]:
    """(X float64 [n, num_features] encoded, unscaled; y) or DataError naming the column.

    Extra columns are ignored here (the GX suite reports them).
    """
    missing = [c for c in contract.table_columns if c not in frame.columns]
    if missing:
        raise DataError(site_id, "columns_present", f"missing column(s): {_shown(missing)}")
    if len(frame) < min_rows:
        raise DataError(site_id, "min_rows", f"{len(frame)} rows, at least {min_rows} required")
    parts = [encode_column(c, frame[c.name], site_id) for c in contract.columns]
    x = np.concatenate(parts, axis=1) if parts else np.zeros((len(frame), 0))
    return x, target_array(contract, frame[contract.label], site_id)


@dataclass(frozen=True)
class Scaler:
    """x -> (x - center) / scale, per model input (arrays of shape [num_features])."""

    center: np.ndarray
    scale: np.ndarray

    def transform(self, x: np.ndarray) -> np.ndarray:
        """Scaled float32 copy of `x` [n, num_features]."""
        return ((np.asarray(x, dtype=np.float64) - self.center) / self.scale).astype(np.float32)


def numeric_mask(contract: DataContract) -> np.ndarray:
    """[num_features] bool: which model inputs come from float/int columns (scaled)."""
    return np.asarray(
        [c.type in ("float", "int") for c in contract.columns for _ in c.encoded_names], bool
    )


def fixed_constants(contract: DataContract) -> tuple[np.ndarray, np.ndarray]:
    """(center, scale) per model input from the contract alone (column, else encoding)."""
    center, scale = [], []
    for c in contract.columns:
        for _ in c.encoded_names:
            numeric = c.type in ("float", "int")
            center.append(
                (c.center if c.center is not None else contract.encoding.center) if numeric else 0
            )
            scale.append(
                (c.scale if c.scale is not None else contract.encoding.scale) if numeric else 1
            )
    return np.asarray(center, np.float64), np.asarray(scale, np.float64)


def fit_scaler(
    contract: DataContract,
    x_train: np.ndarray,
    published: tuple[np.ndarray, np.ndarray] | None = None,
) -> Scaler:
    """The contract's scaler; for "site_zscore" fitted on the site's training inputs only
    (population std; a constant input gets std 1); for "federated_zscore" the `published`
    (center, scale) per model input (`GlobalStats.scaler_arrays`), required."""
    if contract.encoding.scaling == "fixed":
        return Scaler(*fixed_constants(contract))
    if contract.encoding.scaling == "federated_zscore":
        if published is None:
            raise ValueError(
                f"contract {contract.name!r}: encoding.scaling federated_zscore scales with the "
                "global mean/std published after the statistics round, and none was given"
            )
        center, scale = (np.asarray(a, dtype=np.float64) for a in published)
        shape = (contract.num_features,)
        if center.shape != shape or scale.shape != shape or not np.all(scale > 0):
            raise ValueError(
                f"contract {contract.name!r}: published scaling must be {shape} centers and "
                f"positive scales, got {center.shape} and {scale.shape}"
            )
        return Scaler(center, scale)
    n_features = contract.num_features
    x = np.asarray(x_train, dtype=np.float64)
    if x.ndim != 2 or x.shape[1] != n_features or x.shape[0] == 0:
        raise ValueError(
            f"{contract.name}: scaler needs training features of shape [n>0, {n_features}], "
            f"got {x.shape}"
        )
    numeric = numeric_mask(contract)
    std = x.std(axis=0)
    center = np.where(numeric, x.mean(axis=0), 0.0)
    scale = np.where(numeric & (std > 0), std, 1.0)
    return Scaler(center, scale)


def scale_target(contract: DataContract, y: np.ndarray) -> np.ndarray:
    """What the model learns: class indices as is; regression (y - center) / scale (float32)."""
    if not contract.is_regression:
        return np.asarray(y, dtype=np.int64)
    t = contract.target
    return ((np.asarray(y, dtype=np.float64) - t.center) / t.scale).astype(np.float32)


def unscale_target(contract: DataContract, predicted: np.ndarray) -> np.ndarray:
    """A regression model's outputs back in the target's unit (float64 [n])."""
    t = contract.target
    return np.asarray(predicted, dtype=np.float64).reshape(-1) * t.scale + t.center
