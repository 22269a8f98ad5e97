"""The round's total FedAvg weight under protection he (pure): what the coordinator divides
the ciphertext sum by (`components.he.ckks.step_model`).

A site encrypts `[w·Δ, w]` with w = 1 when its policy hides counts ("uniform"), else its
example count capped by its declared maximum ("num_examples",
`components.export.executor.he_weight`); the count itself is in its signed manifest then, so
the coordinator recomputes the same w with the same caps (`count_caps`). A wrong W is caught
by the sites: the decrypted weight slot would not read one step per round.
"""

from __future__ import annotations

from collections.abc import Mapping

from components.he.ckks import HeError


def total_weight(
    how: str,
    counts: Mapping[str, int | None],
    caps: Mapping[str, tuple[int, str] | None],
) -> float:
    """Σ wᵢ over the contributing sites (`counts`: site -> manifest num_examples)."""
    if not counts:
        raise HeError("no contributing site: no total weight")
    if how == "uniform":
        return float(len(counts))
    if how != "num_examples":
        raise HeError(f"unknown he weighting {how!r}")
    total = 0
    for site, count in sorted(counts.items()):
        if count is None or count <= 0:
            raise HeError(
                f"site {site} weights by num_examples but its manifest reveals no positive count"
            )
        cap = caps.get(site)
        total += min(count, cap[0]) if cap is not None else count
    return float(total)
