"""`fedpipe contract draft FILE [--target COLUMN]`: a data contract proposal from a sample
table, for the user to edit (pure; the command reads the file and prints, writes nothing).

Per column: the type (bool, int, float; text becomes a category with its sorted values),
the observed range widened to round numbers (so the contract does not encode the sample's
exact extremes), nulls (a column with empty cells is proposed nullable, imputed with a round
value inside its range) and a comment with the null count. Numeric columns get fixed scaling
constants from the widened range alone (center = its middle, scale = half its width), so the
proposal needs no statistic of the sample; replace them with published reference values where
they exist. The target (`--target`): integer or text with few values = binary/multiclass
classes, else regression with a widened range. The result is checked against the
`DataContract` model before it is printed.
"""

from __future__ import annotations

import math
import re
from typing import Any

import numpy as np
import pandas as pd

from components.domain.contract import DataContract
from components.domain.models import API_VERSION

MAX_CATEGORIES = 50
MAX_CLASSES = 20


class DraftError(ValueError):
    """A sample that cannot be drafted (no rows, unknown target, unusable column)."""


def nice_range(low: float, high: float) -> tuple[float, float]:
    """[low, high] widened outward to multiples of a round step (1, 2 or 5 × 10^k), one
    step of margin; never below 0 when the values are not."""
    if not (math.isfinite(low) and math.isfinite(high)):
        raise DraftError("range of non-finite values")
    span = max(high - low, abs(high), abs(low), 1e-12)
    raw = span / 5
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    lo = math.floor(low / step) * step - step
    hi = math.ceil(high / step) * step + step
    if low >= 0 > lo:
        lo = 0.0
    return _clean(lo), _clean(hi)


def _clean(value: float) -> float:
    return float(f"{value:.12g}")


def _name(column: Any) -> str:
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", str(column)).strip("_") or "column"
    return name if re.match(r"[A-Za-z_]", name) else f"c_{name}"


def _kind(series: pd.Series) -> str:
    present = series.dropna()
    if pd.api.types.is_bool_dtype(series) or (
        len(present) and present.map(lambda v: isinstance(v, bool | np.bool_)).all()
    ):
        return "bool"
    if pd.api.types.is_integer_dtype(series):
        return "int"
    if pd.api.types.is_float_dtype(series):
        values = present.to_numpy(dtype=np.float64)
        return "int" if len(values) and np.all(values == np.round(values)) else "float"
    return "category"


def _categories(series: pd.Series, column: str) -> list[Any]:
    values = series.dropna().unique().tolist()
    if len(values) > MAX_CATEGORIES:
        raise DraftError(
            f"column {column}: {len(values)} distinct text values (a free-text or id column?); "
            "drop it or encode it before drafting"
        )
    if all(isinstance(v, int | np.integer) for v in values):
        return sorted(int(v) for v in values)
    return sorted(str(v) for v in values)


def draft_column(name: str, series: pd.Series) -> tuple[dict[str, Any], str]:
    """(the column's contract entry, a comment line about the sample)."""
    nulls = int(series.isna().sum())
    kind = _kind(series)
    entry: dict[str, Any] = {"name": _name(name), "type": kind}
    note = f"{name}: {kind}, {nulls} empty of {len(series)}"
    impute: Any = None
    if kind in ("int", "float"):
        values = series.dropna().to_numpy(dtype=np.float64)
        if not len(values):
            raise DraftError(f"column {name}: no values to draft a range from")
        low, high = nice_range(float(values.min()), float(values.max()))
        if kind == "int":
            low, high = math.floor(low), math.ceil(high)
        entry["range"] = [low, high]
        entry["center"] = _clean((low + high) / 2)
        entry["scale"] = _clean((high - low) / 2)
        impute = entry["center"] if kind == "float" else int(round((low + high) / 2))
        note += f", observed {values.min():g} to {values.max():g}"
    elif kind == "category":
        entry["categories"] = _categories(series, name)
        impute = entry["categories"][0]
        note += f", {len(entry['categories'])} categories"
    else:
        impute = False
    if nulls:
        entry["nullable"] = True
        entry["impute"] = impute
    entry["unit"] = ""
    entry["description"] = ""
    return entry, note


def draft_target(name: str, series: pd.Series) -> tuple[dict[str, Any], str]:
    """The target entry: classes for few integer/text values, else a regression range."""
    present = series.dropna()
    if present.empty:
        raise DraftError(f"target {name}: no values")
    kind = _kind(series)
    distinct = present.unique()
    if kind in ("int", "bool", "category") and len(distinct) <= MAX_CLASSES:
        if kind != "int":
            raise DraftError(
                f"target {name}: {kind} labels; encode the classes as integers 0..k-1 first"
            )
        classes = sorted(int(v) for v in distinct)
        task = "binary" if len(classes) == 2 else "multiclass"
        if len(classes) < 2:
            raise DraftError(f"target {name}: a single class in the sample")
        return {"name": _name(name), "task": task, "classes": classes}, (
            f"target {name}: {task}, {len(classes)} classes"
        )
    values = present.to_numpy(dtype=np.float64)
    low, high = nice_range(float(values.min()), float(values.max()))
    entry = {
        "name": _name(name),
        "task": "regression",
        "range": [low, high],
        "center": _clean((low + high) / 2),
        "scale": _clean((high - low) / 2),
    }
    return entry, f"target {name}: regression, observed {values.min():g} to {values.max():g}"


def draft_contract(
    frame: pd.DataFrame, name: str, target: str | None = None
) -> tuple[dict[str, Any], list[str]]:
    """(a DataContract document, comment lines). DraftError for an unusable sample."""
    if frame.empty:
        raise DraftError("the sample has no rows")
    if target is None:
        target = "label" if "label" in frame.columns else str(frame.columns[-1])
    if target not in frame.columns:
        raise DraftError(
            f"--target {target!r} is not a column (columns: {', '.join(map(str, frame.columns))})"
        )
    columns, notes = [], []
    for column in frame.columns:
        if column == target:
            continue
        entry, note = draft_column(str(column), frame[column])
        columns.append(entry)
        notes.append(note)
    target_entry, target_note = draft_target(target, frame[target])
    notes.append(target_note)
    rows = max(1, len(frame))
    doc = {
        "apiVersion": API_VERSION,
        "kind": "DataContract",
        "name": re.sub(r"[^a-z0-9_]+", "_", name.lower()).strip("_") or "my_data",
        "version": 1,
        "description": "",
        "columns": columns,
        "target": target_entry,
        "rows": {"min_train": min(30, rows), "min_holdout": min(10, rows)},
        "encoding": {"scaling": "fixed"},
    }
    DataContract.parse_obj(doc)  # the proposal is a valid contract as printed
    return doc, notes


def contract_yaml(doc: dict[str, Any], notes: list[str], source: str) -> str:
    """The proposal as YAML with a header comment (flow-style lists of scalars)."""
    import yaml

    class _Dumper(yaml.SafeDumper):
        pass

    def _list(dumper: yaml.SafeDumper, data: list[Any]) -> Any:
        flow = all(not isinstance(x, list | dict) for x in data)
        return dumper.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=flow)

    _Dumper.add_representer(list, _list)
    header = [
        "# yaml-language-server: $schema=../../pipelines/config/schemas/contract.schema.json",
        f"# Drafted by `fedpipe contract draft` from {source}: a proposal, edit it. Ranges are",
        "# the sample's widened to round numbers; center/scale come from those ranges only.",
        "# Fill in units and descriptions; check categories, nulls and the target.",
        *(f"#   {n}" for n in notes),
    ]
    return "\n".join(header) + "\n" + yaml.dump(doc, Dumper=_Dumper, sort_keys=False, width=100)
