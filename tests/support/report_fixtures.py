"""Hand-written round reports and evaluations (contract shapes) for the report tests."""

from __future__ import annotations

from typing import Any

SITES = ["clinic-boston", "hospital-berlin", "hospital-paris"]


def round_reports() -> list[dict[str, Any]]:
    """Two rounds; round 2: boston abstained (budget), paris rejected (signature)."""
    return [
        {
            "round": 1,
            "version": 1,
            "contributors": ["clinic-boston", "hospital-berlin", "hospital-paris"],
            "abstained": {},
            "rejected": {},
            "rule": "fedavg",
            "epsilon": {
                "clinic-boston": {"epsilon": 1.0, "epsilon_pld": 0.8, "delta": 1e-5},
                "hospital-berlin": {"epsilon": 1.5, "epsilon_pld": 1.25, "delta": 1e-5},
                "hospital-paris": {"epsilon": 2.0, "epsilon_pld": 1.5, "delta": 1e-5},
            },
        },
        {
            "round": 2,
            "version": 2,
            "contributors": ["hospital-berlin"],
            "abstained": {"clinic-boston": "lifetime budget would be exceeded"},
            "rejected": {"hospital-paris": "signature does not verify"},
            "rule": "fedavg",
            "epsilon": {
                "hospital-berlin": {"epsilon": 0.5, "epsilon_pld": 0.25, "delta": 1e-5},
                "hospital-paris": {"epsilon": 2.0, "epsilon_pld": 1.5, "delta": 1e-5},
            },
        },
    ]


def evaluation(site: str, rnd: int, acc: float, loss: float, n: int, cm: list) -> dict[str, Any]:
    return {
        "site_id": site,
        "round": rnd,
        "accuracy": acc,
        "loss": loss,
        "auc": None,
        "num_examples": n,
        "confusion_matrix": cm,
        "labels": [0, 1],
    }


def evaluations() -> list[dict[str, Any]]:
    return [
        evaluation("clinic-boston", 1, 0.5, 0.7, 10, [[5, 0], [5, 0]]),
        evaluation("hospital-berlin", 1, 0.8, 0.5, 30, [[10, 6], [0, 14]]),
        evaluation("hospital-paris", 1, 0.9, 0.4, 60, [[25, 5], [1, 29]]),
        evaluation("clinic-boston", 2, 1.0, 0.1, 10, [[5, None], [None, 5]]),
        evaluation("hospital-berlin", 2, 0.9, 0.3, 30, [[14, None], [None, 13]]),
        evaluation("hospital-paris", 2, 0.95, 0.2, 60, [[28, 2], [1, 29]]),
    ]
