"""Anomaly scores of one round's updates, with reasons a person can read (pure numpy).

For every site's update x and the round's robust centre c (the cosine-screened geometric
median of the updates, `screened_geometric_median`):

* per tensor t: ‖xₜ‖ and its ratio to the median of that tensor's norm over the sites;
* cosine(x, c) over the whole update, and per tensor (the least is named);
* distance ‖x − c‖ and its ratio to the median of those distances over the sites.

A site is flagged when a tensor's norm ratio exceeds `norm_ratio` (default 3), its cosine to
the centre is below `min_cosine` (default 0: it points away from the round), or its distance
ratio exceeds `distance_ratio` (default 3). Each flag comes with its reason, e.g.
"site-b: kernel norm 9.8× the median; cosine −0.97 to the robust centre (kernel −0.98)".
With fewer than 3 updates nothing is flagged (no majority to compare with).

Per-site history (`history`, {site: (scored, flagged)} over earlier rounds, from the site
health the aggregate task carries in the model meta): a site not flagged by the rules above
but flagged in more than `persist_share` (default half) of at least `persist_min_rounds`
(default 3) earlier scored rounds stays flagged while its cosine to the centre is below the
round's median cosine over the sites (it is not aligned with the round as well as the typical
site), with the reason saying so. Why: late in training a sign-flipped update −x can point
slightly along the centre (cosine +0.01…+0.22 measured, while honest sites sat at +0.03…+0.7),
which no single-round threshold separates from a slow honest site; the history does. An honest
site is never flagged by this unless it was flagged in most of its earlier rounds.

Why this centre, not the coordinate-wise median (measured, `pipelines/MEASUREMENTS.md`): each
attacker's own values enter a coordinate-wise median, so three sign-flipped updates −xₐ pulled
it toward themselves and late in training had a positive cosine to it (sign-flip attackers at
f = 3 flagged in 86–88 % of their rounds); on Dirichlet(0.5) splits sites whose data differ
pointed away from that median in up to 11 % of their rounds. The screened geometric median
leaves the attackers out: attackers flagged in ≥ 93 % of their rounds per (attack, f), honest
Dirichlet sites in none over 15 splits, at the same cost (0.49 against 0.48 CPU-seconds per
round at K = 100, P = 1e6: norms, dots and distances dominate). Thresholds relative to a robust spread (MAD z-scores of distances or norms) were tried
and flagged more honest Dirichlet sites (up to 19 % of rounds), not fewer.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from components.aggregation.rules import aggregate
from components.aggregation.updates import flat
from components.common.tensors import Tensors

MIN_UPDATES = 3


@dataclass(frozen=True)
class Thresholds:
    """When a site is flagged (see the module doc)."""

    norm_ratio: float = 3.0
    min_cosine: float = 0.0
    distance_ratio: float = 3.0
    persist_share: float = 0.5
    persist_min_rounds: int = 3


DEFAULT_THRESHOLDS = Thresholds()


@dataclass(frozen=True)
class SiteScore:
    """One site's scores in one round; `reasons` empty unless flagged."""

    site: str
    norm: float
    tensor_norms: dict[str, float]
    norm_ratios: dict[str, float]
    cosine: float
    tensor_cosines: dict[str, float]
    distance: float
    distance_ratio: float
    reasons: list[str] = field(default_factory=list)

    @property
    def flagged(self) -> bool:
        return bool(self.reasons)

    @property
    def explanation(self) -> str:
        """'site: reason; reason', or '' when not flagged."""
        return f"{self.site}: " + "; ".join(self.reasons) if self.reasons else ""

    def as_json(self) -> dict:
        """Rounded for the round report (4 significant digits)."""

        def r(v: float) -> float | None:
            return float(f"{v:.4g}") if np.isfinite(v) else None

        return {
            "norm": r(self.norm),
            "max_norm_ratio": r(max(self.norm_ratios.values(), default=float("nan"))),
            "cosine": r(self.cosine),
            "distance_ratio": r(self.distance_ratio),
            "flagged": self.flagged,
            "reason": self.explanation,
        }


def _dot(a: np.ndarray, b: np.ndarray) -> float:
    """⟨a, b⟩ from a float32 BLAS product, redone in float64 when float32 overflows."""
    value = float(np.dot(a, b))
    if np.isfinite(value):
        return value
    return float(np.dot(a.astype(np.float64), b.astype(np.float64)))


def _ratio(value: float, typical: float) -> float:
    if typical > 0:
        return value / typical
    return 1.0 if value == 0 else float("inf")


def _cos(dot: float, a: float, b: float) -> float:
    return dot / (a * b) if a > 0 and b > 0 else float("nan")


def persistent(scored: int, flagged: int, thresholds: Thresholds) -> bool:
    """A history that keeps a site flagged while its cosine stays low (module doc)."""
    return scored >= thresholds.persist_min_rounds and flagged > thresholds.persist_share * scored


def score_round(
    updates: Mapping[str, Tensors],
    thresholds: Thresholds | None = None,
    history: Mapping[str, tuple[int, int]] | None = None,
) -> list[SiteScore]:
    """Scores of every site's update (sorted by site id); see the module doc.

    `history`: {site: (rounds scored, rounds flagged)} before this round (none: no site has
    a history). Updates must share names, shapes and float32 dtype and be finite (verify
    first)."""
    history = history or {}
    thresholds = thresholds or DEFAULT_THRESHOLDS
    sites = sorted(updates)
    if not sites:
        return []
    rows = [updates[s] for s in sites]
    names = sorted(rows[0])
    centre = aggregate(rows, "screened_geometric_median")
    c_flat = {n: flat(centre[n]) for n in names}
    c_norm = {n: np.sqrt(_dot(c_flat[n], c_flat[n])) for n in names}
    norms = np.empty((len(sites), len(names)))
    dots = np.empty_like(norms)
    dist_sq = np.empty_like(norms)
    for i, row in enumerate(rows):
        for j, n in enumerate(names):  # float32 products, float64 results
            x, c = flat(row[n]), c_flat[n]
            diff = np.subtract(x, c)
            norms[i, j] = np.sqrt(_dot(x, x))
            dots[i, j] = _dot(x, c)
            dist_sq[i, j] = _dot(diff, diff)
    typical_norm = np.median(norms, axis=0)
    whole_norm = np.sqrt((norms**2).sum(axis=1))
    centre_norm = float(np.sqrt(sum(v * v for v in c_norm.values())))
    distance = np.sqrt(dist_sq.sum(axis=1))
    typical_distance = float(np.median(distance))
    judge = len(sites) >= MIN_UPDATES
    whole_cos = [_cos(float(dots[i].sum()), whole_norm[i], centre_norm) for i in range(len(sites))]
    finite_cos = [c for c in whole_cos if np.isfinite(c)]
    typical_cos = float(np.median(finite_cos)) if finite_cos else float("nan")
    out = []
    for i, site in enumerate(sites):
        ratios = {n: _ratio(norms[i, j], typical_norm[j]) for j, n in enumerate(names)}
        tcos = {n: _cos(dots[i, j], norms[i, j], c_norm[n]) for j, n in enumerate(names)}
        cosine = whole_cos[i]
        d_ratio = _ratio(distance[i], typical_distance)
        reasons: list[str] = []
        if judge:
            worst = max(names, key=lambda n: ratios[n])
            if ratios[worst] > thresholds.norm_ratio:
                reasons.append(f"{worst} norm {ratios[worst]:.1f}× the median")
            if np.isfinite(cosine) and cosine < thresholds.min_cosine:
                least = min(names, key=lambda n: tcos[n] if np.isfinite(tcos[n]) else 2.0)
                reasons.append(
                    f"cosine {cosine:+.2f} to the robust centre ({least} {tcos[least]:+.2f})"
                )
            if d_ratio > thresholds.distance_ratio:
                most = names[int(np.argmax(dist_sq[i]))]
                reasons.append(
                    f"distance to the robust centre {d_ratio:.1f}× the median (mostly {most})"
                )
            scored, flagged = history.get(site, (0, 0))
            if (
                not reasons
                and persistent(scored, flagged, thresholds)
                and np.isfinite(cosine)
                and cosine < typical_cos
            ):
                least = min(names, key=lambda n: tcos[n] if np.isfinite(tcos[n]) else 2.0)
                reasons.append(
                    f"cosine {cosine:+.2f} to the robust centre ({least} {tcos[least]:+.2f}), "
                    f"below the round's median {typical_cos:+.2f}, after flags in {flagged} of "
                    f"its {scored} earlier rounds"
                )
        out.append(
            SiteScore(
                site=site,
                norm=float(whole_norm[i]),
                tensor_norms={n: float(norms[i, j]) for j, n in enumerate(names)},
                norm_ratios=ratios,
                cosine=cosine,
                tensor_cosines=tcos,
                distance=float(distance[i]),
                distance_ratio=d_ratio,
                reasons=reasons,
            )
        )
    return out
