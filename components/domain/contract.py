"""`kind: DataContract`: what every site table of a federation must look like (pure).

A contract is a YAML document next to the sites (`sites/contracts/<name>.yaml`), named by each
member site's `data.contract`. It is the single source for the GX suite
(`components.validate.suite`), the array conversion and encoding
(`components.datasets.features`) and the model shapes (`num_features`, `num_outputs`).
Schema: `pipelines/config/schemas/contract.schema.json` (pydantic v1, unknown fields refused,
every error at once with file and field through `pipelines.config.loader`).

Encoding, identical at every site: numeric columns (`float`, `int`) are scaled as
`encoding.scaling` says; `bool` becomes 0/1; `category` becomes one-hot columns in the
contract's category order (`<column>=<category>`). Nulls, where a column allows them, are
replaced by the column's fixed `impute` value before encoding.

Scaling is part of the privacy guarantee. `fixed` uses constants written in the contract
(per column `center`/`scale`, else `encoding.center`/`encoding.scale`): data-independent.
`site_zscore` fits mean and std on the site's own training rows, a data-dependent step
outside the DP accounting: `check_private_scaling` refuses it when DP is on.
`federated_zscore` scales with the global mean and std the coordinator publishes after a
statistics round in which each site releases DP-noised, clipped sums per numeric input
(`encoding.statistics`: epsilon or noise multiplier of that release, charged to the site's
ledger; `components.datasets.federated_stats`): allowed with DP on.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    Extra,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    conint,
    root_validator,
)
from pydantic import validator as field_validator

from components.domain.models import API_VERSION, DATASET_PATTERN

COLUMN_PATTERN = r"^[A-Za-z_][A-Za-z0-9_.-]{0,127}$"
ColumnType = Literal["float", "int", "bool", "category"]
TaskKind = Literal["binary", "multiclass", "regression"]
Scaling = Literal["fixed", "site_zscore", "federated_zscore"]
PositiveInt = conint(strict=True, ge=1)
Category = StrictInt | StrictStr


class ContractError(ValueError):
    """A contract that cannot be used as asked (e.g. a fitted scaler with DP on)."""


class _Strict(BaseModel):
    class Config:
        extra = Extra.forbid
        allow_mutation = False


def _finite(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{what}: a number is required, got {type(value).__name__} {value!r}")
    if not math.isfinite(value):
        raise ValueError(f"{what}: a finite number is required, got {value!r}")
    return float(value)


def _range(value: Any) -> tuple[float, float] | None:
    if value is None:
        return None
    if not isinstance(value, list | tuple) or len(value) != 2:
        raise ValueError("range must be [min, max]")
    low, high = _finite(value[0], "range[0]"), _finite(value[1], "range[1]")
    if low > high:
        raise ValueError(f"range [{value[0]}, {value[1]}]: min exceeds max")
    return (low, high)


class Column(_Strict):
    """One feature column of the table."""

    name: StrictStr = Field(..., description="column header in the file", pattern=COLUMN_PATTERN)
    type: ColumnType = Field(..., description="float, int, bool or category")
    range: list[float] | None = Field(
        None, description="[min, max] inclusive plausibility range (float and int columns)"
    )
    categories: list[Category] | None = Field(
        None, description="the fixed categories, in one-hot order (category columns)"
    )
    nullable: StrictBool = Field(False, description="whether empty cells are allowed")
    impute: StrictBool | StrictInt | StrictFloat | StrictStr | None = Field(
        None, description="fixed value that replaces an empty cell (required when nullable)"
    )
    center: float | None = Field(None, description="fixed scaling center (encoding fixed)")
    scale: float | None = Field(None, description="fixed scaling divisor > 0 (encoding fixed)")
    unit: StrictStr = Field("", description="unit of measurement")
    description: StrictStr = ""

    @field_validator("name")
    def _name(cls, value: str) -> str:
        import re

        if not re.fullmatch(COLUMN_PATTERN, value):
            raise ValueError(f"{value!r} is not a valid column name (pattern {COLUMN_PATTERN})")
        return value

    @field_validator("range", pre=True)
    def _range_ok(cls, value: Any) -> Any:
        checked = _range(value)
        return None if checked is None else list(checked)

    @field_validator("categories", pre=True)
    def _categories(cls, value: Any) -> Any:
        if value is None:
            return value
        if not isinstance(value, list):
            raise ValueError("categories must be a list")
        for i, item in enumerate(value):
            if isinstance(item, bool):
                raise ValueError(
                    f"categories[{i}] is the YAML boolean {str(item).lower()} (yes/no/on/off "
                    'read as booleans): quote it, e.g. "yes"'
                )
            if not isinstance(item, int | str):
                raise ValueError(f"categories[{i}]: a string or an integer is required")
        return value

    @field_validator("scale")
    def _scale(cls, value: float | None) -> float | None:
        if value is not None and not (math.isfinite(value) and value > 0):
            raise ValueError(f"scale must be a finite number > 0, got {value}")
        return value

    @root_validator(skip_on_failure=True)
    def _by_type(cls, values: dict[str, Any]) -> dict[str, Any]:
        kind, rng, cats = values.get("type"), values.get("range"), values.get("categories")
        errors: list[str] = []
        if kind in ("float", "int"):
            if rng is None:
                errors.append(f"a {kind} column needs range: [min, max]")
            if cats is not None:
                errors.append(f"a {kind} column takes no categories")
            if kind == "int" and rng is not None and any(v != int(v) for v in rng):
                errors.append("an int column's range must be whole numbers")
        elif kind == "category":
            if not cats:
                errors.append("a category column needs categories: [...] (at least one)")
            elif len({str(c) for c in cats}) != len(cats):
                errors.append("categories must be unique")
            if rng is not None:
                errors.append("a category column takes no range")
        elif kind == "bool":
            if rng is not None or cats is not None:
                errors.append("a bool column takes neither range nor categories")
        if kind not in ("float", "int") and (
            values.get("center") is not None or values.get("scale") is not None
        ):
            errors.append("center/scale apply to float and int columns only")
        impute = values.get("impute")
        if values.get("nullable") and impute is None:
            errors.append("a nullable column needs impute: <fixed value> (what replaces a null)")
        if impute is not None and not values.get("nullable"):
            errors.append("impute is only for nullable: true columns")
        if impute is not None and kind is not None:
            errors += _impute_errors(kind, impute, rng, cats)
        if errors:
            raise ValueError("; ".join(errors))
        return values

    @property
    def encoded_names(self) -> list[str]:
        """Model input names this column becomes (one per category for one-hot)."""
        if self.type == "category":
            return [f"{self.name}={c}" for c in self.categories or []]
        return [self.name]


def _impute_errors(kind: str, impute: Any, rng: Any, cats: Any) -> list[str]:
    if kind == "bool":
        return [] if isinstance(impute, bool) else ["impute of a bool column must be true/false"]
    if kind == "category":
        ok = cats is not None and any(str(impute) == str(c) for c in cats)
        return [] if ok else [f"impute {impute!r} is not one of the categories"]
    if isinstance(impute, bool) or not isinstance(impute, int | float):
        return [f"impute of a {kind} column must be a number"]
    if rng is not None and not rng[0] <= impute <= rng[1]:
        return [f"impute {impute} is outside range [{rng[0]}, {rng[1]}]"]
    return []


class Target(_Strict):
    """What the model predicts: a class label (binary, multiclass) or a number (regression)."""

    name: StrictStr = Field("label", description="the target column's header")
    task: TaskKind = Field(..., description="binary, multiclass or regression")
    classes: list[StrictInt] | None = Field(
        None, description="the class labels in model-output order (binary: 2, multiclass: 3+)"
    )
    range: list[float] | None = Field(
        None, description="[min, max] plausibility range of a regression target"
    )
    center: float = Field(0.0, description="regression: the model predicts (y - center) / scale")
    scale: float = Field(1.0, description="regression: fixed target scale, > 0")
    unit: StrictStr = ""
    description: StrictStr = ""

    @field_validator("name")
    def _name(cls, value: str) -> str:
        return Column._name(value)  # type: ignore[operator]

    @field_validator("range", pre=True)
    def _range_ok(cls, value: Any) -> Any:
        checked = _range(value)
        return None if checked is None else list(checked)

    @field_validator("scale")
    def _scale(cls, value: float) -> float:
        if not (math.isfinite(value) and value > 0):
            raise ValueError(f"scale must be a finite number > 0, got {value}")
        return value

    @root_validator(skip_on_failure=True)
    def _by_task(cls, values: dict[str, Any]) -> dict[str, Any]:
        task, classes, rng = values.get("task"), values.get("classes"), values.get("range")
        if task != "regression" and (values.get("center"), values.get("scale")) != (0.0, 1.0):
            raise ValueError("center/scale apply to a regression target only")
        if task == "regression":
            if classes is not None:
                raise ValueError("a regression target takes no classes")
            if rng is None:
                raise ValueError("a regression target needs range: [min, max]")
            return values
        if rng is not None:
            raise ValueError(f"a {task} target takes classes, not a range")
        if not classes or len(set(classes)) != len(classes):
            raise ValueError(f"a {task} target needs unique classes: [...]")
        if task == "binary" and len(classes) != 2:
            raise ValueError(f"a binary target has exactly 2 classes, got {len(classes)}")
        if task == "multiclass" and len(classes) < 3:
            raise ValueError(
                f"a multiclass target has at least 3 classes, got {len(classes)} (use binary)"
            )
        return values


class Rows(_Strict):
    """Minimum table sizes: below them a site abstains."""

    min_train: PositiveInt = Field(..., description="minimum rows of a training table")
    min_holdout: PositiveInt = Field(..., description="minimum rows of a holdout table")


class Statistics(_Strict):
    """The DP release of a `federated_zscore` statistics round: one of epsilon (the noise
    multiplier is then the smallest that spends at most this epsilon at the policy's delta)
    or noise_multiplier (noise std / L2 sensitivity of the normalized release)."""

    epsilon: float | None = Field(
        None, description="epsilon of each site's release (RDP, at its policy's delta), > 0"
    )
    noise_multiplier: float | None = Field(
        None, description="Gaussian noise multiplier of the release, > 0 (instead of epsilon)"
    )

    @field_validator("epsilon", "noise_multiplier")
    def _positive(cls, value: float | None) -> float | None:
        if value is not None and not (math.isfinite(value) and value > 0):
            raise ValueError(f"must be a finite number > 0, got {value}")
        return value

    @root_validator(skip_on_failure=True)
    def _one(cls, values: dict[str, Any]) -> dict[str, Any]:
        given = [k for k in ("epsilon", "noise_multiplier") if values.get(k) is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of epsilon or noise_multiplier")
        return values


class Encoding(_Strict):
    """How every site turns numeric columns into model inputs (identically)."""

    scaling: Scaling = Field(
        ...,
        description="fixed: (x - center) / scale with the contract's constants; site_zscore: "
        "mean/std of the site's own training rows (not allowed with DP on); "
        "federated_zscore: the global mean/std published after a DP statistics round",
    )
    statistics: Statistics | None = Field(
        None, description="federated_zscore only: the DP release of the statistics round"
    )
    center: float = Field(0.0, description="default center of numeric columns (fixed)")
    scale: float = Field(1.0, description="default scale of numeric columns (fixed), > 0")

    @field_validator("center")
    def _center(cls, value: float) -> float:
        return _finite(value, "center")

    @field_validator("scale")
    def _scale(cls, value: float) -> float:
        if not (math.isfinite(value) and value > 0):
            raise ValueError(f"scale must be a finite number > 0, got {value}")
        return value

    @root_validator(skip_on_failure=True)
    def _statistics(cls, values: dict[str, Any]) -> dict[str, Any]:
        federated = values.get("scaling") == "federated_zscore"
        if federated and values.get("statistics") is None:
            raise ValueError(
                "scaling federated_zscore needs statistics: {epsilon: <e>} or "
                "{noise_multiplier: <z>} (the DP release of the statistics round)"
            )
        if not federated and values.get("statistics") is not None:
            raise ValueError("statistics apply to scaling federated_zscore only")
        return values


BUILDER_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*:[A-Za-z_][A-Za-z0-9_]*$"


class ModelSpec(_Strict):
    """Your own Keras model: `builder` names a function importable in the image,
    `package.module:function`, called as `function(num_features=, num_outputs=, seed=,
    **kwargs)`; it returns an uncompiled `tf.keras.Model` from [batch, num_features] to
    [batch, num_outputs] (class probabilities, or one linear output for regression).
    A run uses it when its `model_name` is the builder string."""

    builder: StrictStr = Field(..., description="package.module:function", pattern=BUILDER_PATTERN)
    kwargs: dict[StrictStr, Any] = Field(
        default_factory=dict, description="keyword arguments of the builder (JSON values)"
    )

    @field_validator("builder")
    def _builder(cls, value: str) -> str:
        import re

        if not re.fullmatch(BUILDER_PATTERN, value):
            raise ValueError(f"{value!r} is not package.module:function")
        return value


class DataContract(_Strict):
    """A federation's data contract (`sites/contracts/<name>.yaml`)."""

    apiVersion: StrictStr = Field(..., description=f"must be {API_VERSION}", enum=[API_VERSION])
    kind: Literal["DataContract"]
    name: StrictStr = Field(..., description="equal to the file name", pattern=DATASET_PATTERN)
    version: PositiveInt = Field(1, description="bump when the contract changes")
    description: StrictStr = ""
    columns: list[Column] = Field(..., description="the feature columns, in file order")
    target: Target
    rows: Rows
    encoding: Encoding
    model: ModelSpec | None = Field(
        None, description="optional: your own Keras model builder and its keyword arguments"
    )

    @field_validator("apiVersion")
    def _api(cls, value: str) -> str:
        if value != API_VERSION:
            raise ValueError(
                f"unsupported apiVersion {value!r}; this fedpipe reads {API_VERSION!r}"
            )
        return value

    @field_validator("name")
    def _name(cls, value: str) -> str:
        import re

        if not re.fullmatch(DATASET_PATTERN, value):
            raise ValueError(f"{value!r} is not a valid contract name (pattern {DATASET_PATTERN})")
        return value

    @field_validator("columns")
    def _columns(cls, value: list[Column]) -> list[Column]:
        if not value:
            raise ValueError("at least one column is required")
        seen: set[str] = set()
        dupes = [c.name for c in value if c.name in seen or seen.add(c.name)]  # type: ignore[func-returns-value]
        if dupes:
            raise ValueError(f"duplicate column name(s): {', '.join(sorted(set(dupes)))}")
        return value

    @root_validator(skip_on_failure=True)
    def _target_not_a_column(cls, values: dict[str, Any]) -> dict[str, Any]:
        target, columns = values.get("target"), values.get("columns") or []
        if target is not None and any(c.name == target.name for c in columns):
            raise ValueError(f"target {target.name!r} is also listed as a feature column")
        return values

    # ------------------------------------------------------------------ derived
    @property
    def label(self) -> str:
        """The target column's name."""
        return self.target.name

    @property
    def task(self) -> str:
        return self.target.task

    @property
    def is_regression(self) -> bool:
        return self.target.task == "regression"

    @property
    def feature_names(self) -> list[str]:
        """The feature columns of the file, in contract order."""
        return [c.name for c in self.columns]

    @property
    def table_columns(self) -> list[str]:
        """All columns of a site table: the features, then the target."""
        return [*self.feature_names, self.target.name]

    @property
    def encoded_names(self) -> list[str]:
        """Model input names after encoding (one-hot expands categories)."""
        return [n for c in self.columns for n in c.encoded_names]

    @property
    def num_features(self) -> int:
        """Model input width (after one-hot)."""
        return len(self.encoded_names)

    @property
    def labels(self) -> tuple[int, ...]:
        """Class labels in model-output order; () for regression."""
        return tuple(self.target.classes or ())

    @property
    def num_outputs(self) -> int:
        """Model output width: the number of classes, or 1 for regression."""
        return 1 if self.is_regression else len(self.labels)

    @property
    def num_classes(self) -> int:
        """Alias of `num_outputs` (the model registry's `num_classes` argument)."""
        return self.num_outputs

    def builder_kwargs(self, model_name: str) -> dict[str, Any] | None:
        """The builder's keyword arguments when `model_name` is this contract's
        `model.builder`, {} for another builder reference, None for a built-in name."""
        if ":" not in model_name:
            return None
        if self.model is not None and self.model.builder == model_name:
            return dict(self.model.kwargs)
        return {}

    @property
    def min_rows(self) -> int:
        return self.rows.min_train

    @property
    def min_holdout_rows(self) -> int:
        return self.rows.min_holdout

    @property
    def scaling(self) -> str:
        return self.encoding.scaling


def check_private_scaling(contract: DataContract, dp_enabled: bool) -> None:
    """ContractError when DP is on and the contract's scaling is fitted on the site's rows."""
    if dp_enabled and contract.encoding.scaling == "site_zscore":
        raise ContractError(
            f"contract {contract.name!r}: encoding.scaling site_zscore fits mean and std on the "
            "site's own rows, a data-dependent step outside the DP accounting (one record "
            "changes every scaled value, so the update's sensitivity is no longer the clip "
            "norm): refused with DP on. Use encoding.scaling fixed with constants in the "
            "contract, or run with DP off"
        )


def parse_contract_json(text: str) -> DataContract:
    """A DataContract from its JSON text (task inputs); ValidationError when invalid."""
    return DataContract.parse_raw(text)


def load_contract_file(path: str | Path) -> DataContract:
    """A DataContract from a YAML file (no cross-checks; the loader reports errors nicely)."""
    import yaml

    return DataContract.parse_obj(yaml.safe_load(Path(path).read_text(encoding="utf-8")))
