"""Data contracts: what a site's table must look like, per dataset (pure, no I/O).

A site table is a CSV with a header: one column per feature (names below, numeric) and an
integer `label` column. The contract is the single source for the GX suite
(`components.validate.suite`), the array conversion (`components.datasets.features`) and the
model shapes (`num_features`, `num_classes`).

Ranges are plausibility bounds chosen from the measurement's meaning (radius in mm, pixel
intensity 0..16), not fitted to the data, so they do not encode any site's values.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

LABEL = "label"

Scaling = Literal["fixed", "site_zscore"]


class UnknownDatasetError(KeyError):
    """A dataset name with no data contract."""

    def __str__(self) -> str:
        return str(self.args[0])


@dataclass(frozen=True)
class FeatureSpec:
    """One numeric feature column: inclusive plausibility range [min_value, max_value]."""

    name: str
    min_value: float
    max_value: float


@dataclass(frozen=True)
class DataContract:
    """The expectations every site table of `name` must meet.

    Columns: exactly `columns` (features in order, then `label`); nulls: none allowed in any
    column; dtypes: `feature_dtypes` / `label_dtypes` (pandas names); values: each feature in
    its [min_value, max_value], labels in `labels`.
    min_rows: minimum rows of a training table; min_holdout_rows: of a holdout table.
    scaling: "fixed" = (x - center) / scale with the contract's constants (`fixed_center`,
    `fixed_scale`); "site_zscore" = per-feature z-score with mean/std of the site's own
    training table, computed inside the site's tasks (`components.datasets.features`).
    """

    name: str
    features: tuple[FeatureSpec, ...]
    labels: tuple[int, ...]
    min_rows: int
    min_holdout_rows: int
    scaling: Scaling
    fixed_center: float = 0.0
    fixed_scale: float = 1.0
    # pandas dtypes accepted for feature columns / the label column (GX type check).
    feature_dtypes: tuple[str, ...] = ("float64", "float32", "int64", "int32")
    label_dtypes: tuple[str, ...] = ("int64", "int32")

    @property
    def feature_names(self) -> list[str]:
        return [f.name for f in self.features]

    @property
    def columns(self) -> list[str]:
        """All columns in file order: the features, then `label`."""
        return [*self.feature_names, LABEL]

    @property
    def num_features(self) -> int:
        return len(self.features)

    @property
    def num_classes(self) -> int:
        return len(self.labels)


# Breast cancer (Wisconsin diagnostic): 10 cell-nucleus measurements x (mean, error, worst).
# Bounds per measurement: radius in mm, texture (grey-level std), perimeter mm, area mm^2;
# the rest are dimensionless ratios. sklearn's target: 0 = malignant, 1 = benign.
_BC_MEASURES: tuple[tuple[str, float], ...] = (
    ("radius", 50.0),
    ("texture", 100.0),
    ("perimeter", 400.0),
    ("area", 10000.0),
    ("smoothness", 2.0),
    ("compactness", 2.0),
    ("concavity", 2.0),
    ("concave_points", 2.0),
    ("symmetry", 2.0),
    ("fractal_dimension", 2.0),
)


def _breast_cancer_features() -> tuple[FeatureSpec, ...]:
    # Same order as sklearn's load_breast_cancer: all "mean", all "error", all "worst".
    names = (
        [(f"mean_{m}", hi) for m, hi in _BC_MEASURES]
        + [(f"{m}_error", hi) for m, hi in _BC_MEASURES]
        + [(f"worst_{m}", hi) for m, hi in _BC_MEASURES]
    )
    return tuple(FeatureSpec(n, 0.0, hi) for n, hi in names)


BREAST_CANCER = DataContract(
    name="breast_cancer",
    features=_breast_cancer_features(),
    labels=(0, 1),
    min_rows=30,
    min_holdout_rows=10,
    scaling="site_zscore",
)

# Digits: 8x8 images, pixel intensity 0..16 (sklearn's load_digits), labels 0..9.
DIGITS = DataContract(
    name="digits",
    features=tuple(FeatureSpec(f"pixel_{r}_{c}", 0.0, 16.0) for r in range(8) for c in range(8)),
    labels=tuple(range(10)),
    min_rows=50,
    min_holdout_rows=10,
    scaling="fixed",
    fixed_center=0.0,
    fixed_scale=16.0,
)

CONTRACTS: dict[str, DataContract] = {c.name: c for c in (BREAST_CANCER, DIGITS)}


def get_contract(dataset: str) -> DataContract:
    """The data contract of `dataset`; UnknownDatasetError lists the known ones."""
    try:
        return CONTRACTS[dataset]
    except KeyError:
        raise UnknownDatasetError(
            f"no data contract for dataset {dataset!r} (known: {', '.join(sorted(CONTRACTS))})"
        ) from None
