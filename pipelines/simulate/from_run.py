"""The FederationSpec of a finished `fedpipe run --local` run, from its `summary.json`. Pure.

Reads `run_id`, `dataset`, `settings.{rounds, seed, split, alpha}` and
`settings.pipeline_parameters` (model, epochs, batch size, learning rate, rule, server
optimizer, DP). Refuses runs the reference cannot reproduce: DP on, a rule other than
fedavg, a server optimizer other than plain FedAvg at learning rate 1.0, a resumed start.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pipelines.simulate.spec import FederationSpec


class RunSummaryError(ValueError):
    """A summary.json that is not a reproducible DP-off FedAvg run; names the field."""


def _get(data: Mapping[str, Any], path: str) -> Any:
    node: Any = data
    for part in path.split("."):
        if not isinstance(node, Mapping) or part not in node:
            raise RunSummaryError(f"summary.json: missing {path}")
        node = node[part]
    return node


def spec_from_summary(
    summary: Mapping[str, Any], site_ids: Sequence[str], weighting: str
) -> FederationSpec:
    """The spec that reproduces the run described by `summary` over `site_ids` (sorted ids)."""
    params = _get(summary, "settings.pipeline_parameters")
    checks = {
        "dp_enabled": (False, "train with --no-dp: the reference has no DP noise"),
        "rule": ("fedavg", "only the fedavg rule is reproduced"),
        "server_optimizer": ("fedavg", "only the plain FedAvg server step is reproduced"),
        "resume": (False, "a resumed run does not start from the seeded initial weights"),
    }
    for name, (wanted, why) in checks.items():
        value = params.get(name, wanted)
        if value != wanted:
            raise RunSummaryError(
                f"summary.json: settings.pipeline_parameters.{name} is {value!r}; {why}"
            )
    if float(params.get("server_learning_rate", 1.0)) != 1.0:
        raise RunSummaryError(
            "summary.json: settings.pipeline_parameters.server_learning_rate must be 1.0"
        )
    split = _get(summary, "settings.split")
    alpha = _get(summary, "settings.alpha") if split == "dirichlet" else None
    try:
        return FederationSpec(
            dataset=str(_get(summary, "dataset")),
            site_ids=tuple(site_ids),
            model_name=str(params.get("model_name", "logreg")),
            rounds=int(_get(summary, "settings.rounds")),
            local_epochs=int(params.get("local_epochs", 1)),
            batch_size=int(params.get("batch_size", 32)),
            learning_rate=float(params.get("learning_rate", 0.1)),
            seed=int(params.get("seed", _get(summary, "settings.seed"))),
            data_seed=int(_get(summary, "settings.seed")),
            run_id=str(_get(summary, "run_id")),
            weighting=weighting,
            alpha=None if alpha is None else float(alpha),
        )
    except (TypeError, ValueError) as exc:
        raise RunSummaryError(f"summary.json: {exc}") from exc
