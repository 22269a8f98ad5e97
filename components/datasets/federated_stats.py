"""`encoding.scaling: federated_zscore`: DP-noised per-feature statistics (pure, no I/O).

A statistics round before training gives every site one scaling without pooling data:

1. each site computes, per numeric model input j with the contract's plausibility range
   [lo_j, hi_j], center c_j = (lo_j + hi_j) / 2 and half-width h_j = (hi_j - lo_j) / 2, the
   *centered, clipped* sums over its n training rows
       s1_j = sum_i (clip(x_ij) - c_j),   s2_j = sum_i (clip(x_ij) - c_j)^2,   n,
   adds Gaussian noise and releases only the noised values (`site_statistics`);
2. the coordinator adds the sites' releases and publishes the global mean and std
   (`combine`); every site then scales with them (`GlobalStats.scaler_arrays`).

Sensitivity (adjacency: add or remove one record, as the DP-SGD accountant uses). Values are
clipped to the range, so one record changes s1_j by at most h_j, s2_j by at most h_j^2 and n by
1. (For the raw, uncentered sums under replace-one adjacency the bounds would be the range width
w_j = hi_j - lo_j for the sum and max(|lo_j|, |hi_j|)^2 for the sum of squares; the centered
bounds h_j = w_j / 2 and h_j^2 <= max(|lo_j|, |hi_j|)^2 are never larger.) Each released
coordinate is divided by its own bound (s1_j / h_j, s2_j / h_j^2, n), so one record moves every
normalized coordinate by at most 1 and the vector of all 2d + 1 of them by at most
sqrt(2d + 1) in L2 norm. Adding N(0, (z * sqrt(2d + 1))^2) to each normalized coordinate is the
Gaussian mechanism with noise multiplier z (noise std / L2 sensitivity): one `GaussianDpEvent(z)`
for the whole release, charged to the site's lifetime ledger as one entry of kind `stats`
(`stats_event`, `components.privacy.ledger.new_stats_entry`). In the data's units the noise
std is z * sqrt(2d + 1) * h_j on s1_j, z * sqrt(2d + 1) * h_j^2 on s2_j, z * sqrt(2d + 1) on n.
A column whose range is a single point (h_j = 0) is constant: nothing about it is released.

Combination (post-processing, free): S1, S2, N = the sums over sites. N below
`MIN_TOTAL_COUNT` is refused (the noise swamped the counts: ask for a larger epsilon or more
sites). mean_j = c_j + clip(S1_j / N, -h_j, h_j); the variance estimate
v_j = S2_j / N - (S1_j / N)^2 can come out negative when noise dominates a feature with little
spread: it is then set to 0 and the feature is named in `negative_variance`; it is also capped
at h_j^2, the largest variance values in the range can have. std_j = max(sqrt(v_j), floor_j)
(features named in `floored`) with floor_j the largest of STD_FLOOR_FRACTION * h_j,
STD_FLOOR_ABS and the noise floor sqrt(sd(S2_j) / N), sd(S2_j) = sqrt(sum over sites of the
noise variance added to s2_j): a std below the square root of the variance estimate's noise std
cannot be told apart from 0, and a tiny floor would blow a nearly constant input up to huge
scaled values wherever a site holds a rare nonzero (measured on digits at epsilon 1: pooled-test
accuracy 0.29 with a 1e-3 * h floor). A single-point range gets std 1.

Noise source: a `numpy.random.Generator`; `os_entropy_generator()` (production) seeds PCG64
with 128 bits from the OS CSPRNG (`secrets.randbits`) used once and never stored; a seeded
generator is for tests and simulations only (whoever knows the seed can subtract the noise).
Floating-point Gaussian sampling, not a discrete Gaussian: the known floating-point attacks
on DP samplers are not addressed (as in `components.train.dpsgd`).
"""

from __future__ import annotations

import json
import math
import secrets
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

from components.domain.contract import DataContract
from components.privacy.accounting import AccountingError, DpSgdEvent, rdp_epsilon

STATS_VERSION = "fedpipe.dev/feature-stats/v1"
GLOBAL_STATS_VERSION = "fedpipe.dev/global-feature-stats/v1"
MIN_TOTAL_COUNT = 2.0
STD_FLOOR_FRACTION = 1e-3
STD_FLOOR_ABS = 1e-6
NOISE_SEARCH_MAX = 1e4


class StatsError(ValueError):
    """Statistics that cannot be computed or combined as asked (the message says why)."""


@dataclass(frozen=True)
class StatsRanges:
    """The released inputs: model-input index, name and plausibility range of each."""

    index: tuple[int, ...]
    names: tuple[str, ...]
    low: tuple[float, ...]
    high: tuple[float, ...]

    @property
    def center(self) -> np.ndarray:
        return (np.asarray(self.low) + np.asarray(self.high)) / 2.0

    @property
    def half_width(self) -> np.ndarray:
        return (np.asarray(self.high) - np.asarray(self.low)) / 2.0

    @property
    def released(self) -> int:
        """d: the number of inputs with a non-degenerate range (2d + 1 released values)."""
        return int(np.count_nonzero(self.half_width > 0))


def stats_ranges(contract: DataContract) -> StatsRanges:
    """The contract's numeric (float, int) model inputs with their ranges, in input order."""
    index, names, low, high = [], [], [], []
    position = 0
    for column in contract.columns:
        for name in column.encoded_names:
            if column.type in ("float", "int"):
                lo, hi = column.range  # type: ignore[misc]
                index.append(position)
                names.append(name)
                low.append(float(lo))
                high.append(float(hi))
            position += 1
    return StatsRanges(tuple(index), tuple(names), tuple(low), tuple(high))


@dataclass(frozen=True)
class Sensitivity:
    """Per released input the bound on one record's effect (add/remove adjacency), and the L2
    sensitivity of the normalized release vector (sqrt(2d + 1))."""

    sum: tuple[float, ...]
    sum_sq: tuple[float, ...]
    count: float
    l2_normalized: float


def sensitivity(ranges: StatsRanges) -> Sensitivity:
    """s1_j moves by at most h_j, s2_j by at most h_j^2, n by 1; normalized L2 sqrt(2d + 1)."""
    h = ranges.half_width
    return Sensitivity(
        sum=tuple(float(v) for v in h),
        sum_sq=tuple(float(v) for v in h * h),
        count=1.0,
        l2_normalized=math.sqrt(2 * ranges.released + 1),
    )


def noise_stds(
    ranges: StatsRanges, noise_multiplier: float
) -> tuple[np.ndarray, np.ndarray, float]:
    """Noise std on (s1_j, s2_j, n) for noise multiplier z: z*sqrt(2d+1) * (h_j, h_j^2, 1)."""
    sens = sensitivity(ranges)
    unit = noise_multiplier * sens.l2_normalized
    h = ranges.half_width
    return unit * h, unit * h * h, unit


def stats_event(noise_multiplier: float) -> DpSgdEvent:
    """The accountant's event of one release: the Gaussian mechanism with multiplier z, i.e.
    one step without subsampling (q = 1); z = 0 is a release without noise (non-private)."""
    if noise_multiplier == 0:
        return DpSgdEvent(0.0, 0.0, 0, non_private=True)
    return DpSgdEvent(sampling_rate=1.0, noise_multiplier=noise_multiplier, steps=1)


def noise_multiplier_for(epsilon: float, delta: float, *, tolerance: float = 1e-4) -> float:
    """The smallest noise multiplier (to `tolerance`, rounded up) whose single release spends
    at most `epsilon` at `delta` (RDP, the accountant budgets are enforced with)."""
    if not (math.isfinite(epsilon) and epsilon > 0):
        raise AccountingError(f"statistics epsilon {epsilon} must be a finite number > 0")
    low, high = 1e-3, 1.0
    while rdp_epsilon([stats_event(high)], delta) > epsilon:
        low, high = high, high * 2
        if high > NOISE_SEARCH_MAX:
            raise AccountingError(
                f"no noise multiplier up to {NOISE_SEARCH_MAX:g} reaches epsilon {epsilon} at "
                f"delta {delta}: ask for a larger epsilon"
            )
    while high - low > tolerance:
        mid = (low + high) / 2
        if rdp_epsilon([stats_event(mid)], delta) > epsilon:
            low = mid
        else:
            high = mid
    return high


def os_entropy_generator() -> np.random.Generator:
    """Production noise source: PCG64 seeded with 128 bits from the OS CSPRNG, never stored."""
    return np.random.Generator(np.random.PCG64(secrets.randbits(128)))


@dataclass(frozen=True)
class SiteStats:
    """One site's noised release (what leaves the site: class `feature_stats`).

    sums / sums_sq: noised centered sums per released input (ranges' order); count: noised
    row count; noise_std_*: the noise std that was added (public: it follows from z and the
    contract); noise_multiplier: z (0 = no noise, DP off)."""

    site_id: str
    names: tuple[str, ...]
    sums: tuple[float, ...]
    sums_sq: tuple[float, ...]
    count: float
    noise_multiplier: float
    noise_std_sum: tuple[float, ...]
    noise_std_sum_sq: tuple[float, ...]
    noise_std_count: float
    version: str = STATS_VERSION

    def to_json(self) -> bytes:
        return json.dumps(asdict(self), sort_keys=True).encode("utf-8")

    @staticmethod
    def from_json(data: bytes, where: str = "feature statistics") -> SiteStats:
        try:
            body = json.loads(data)
            for key in ("names", "sums", "sums_sq", "noise_std_sum", "noise_std_sum_sq"):
                body[key] = tuple(body[key])
            stats = SiteStats(**body)
        except (ValueError, TypeError, KeyError) as exc:
            raise StatsError(f"{where}: not valid feature statistics ({exc})") from exc
        if stats.version != STATS_VERSION:
            raise StatsError(f"{where}: unsupported version {stats.version!r}")
        values = [*stats.sums, *stats.sums_sq, stats.count]
        if not all(isinstance(v, int | float) and math.isfinite(v) for v in values):
            raise StatsError(f"{where}: site {stats.site_id}: non-finite statistics")
        if not len(stats.names) == len(stats.sums) == len(stats.sums_sq):
            raise StatsError(f"{where}: site {stats.site_id}: lengths of names/sums differ")
        return stats


def site_statistics(
    x: np.ndarray,
    ranges: StatsRanges,
    *,
    site_id: str,
    noise_multiplier: float,
    rng: np.random.Generator,
) -> SiteStats:
    """The noised, clipped, centered sums of the site's unscaled model inputs `x` [n, inputs].

    noise_multiplier: z >= 0 (0 = no noise: DP off). The caller charges `stats_event(z)` to
    the site's ledger before anything is released."""
    if not (math.isfinite(noise_multiplier) and noise_multiplier >= 0):
        raise StatsError(f"site {site_id}: noise multiplier {noise_multiplier} must be >= 0")
    data = np.asarray(x, dtype=np.float64)
    if data.ndim != 2 or (ranges.index and data.shape[1] <= max(ranges.index)):
        raise StatsError(
            f"site {site_id}: statistics need inputs of shape [n, >{max(ranges.index, default=-1)}],"
            f" got {data.shape}"
        )
    cols = data[:, list(ranges.index)]
    clipped = np.clip(cols, np.asarray(ranges.low), np.asarray(ranges.high))
    centered = clipped - ranges.center
    s1, s2, n = centered.sum(axis=0), (centered * centered).sum(axis=0), float(len(data))
    std_sum, std_sq, std_n = noise_stds(ranges, noise_multiplier)
    live = ranges.half_width > 0
    if noise_multiplier > 0:
        s1 = s1 + np.where(live, rng.normal(0.0, 1.0, s1.shape), 0.0) * std_sum
        s2 = s2 + np.where(live, rng.normal(0.0, 1.0, s2.shape), 0.0) * std_sq
        n = n + float(rng.normal(0.0, std_n))
    return SiteStats(
        site_id=site_id,
        names=ranges.names,
        sums=tuple(float(v) for v in s1),
        sums_sq=tuple(float(v) for v in s2),
        count=float(n),
        noise_multiplier=float(noise_multiplier),
        noise_std_sum=tuple(float(v) for v in std_sum),
        noise_std_sum_sq=tuple(float(v) for v in std_sq),
        noise_std_count=float(std_n),
    )


@dataclass(frozen=True)
class GlobalStats:
    """What the coordinator publishes: per released input the global mean and std.

    count: the noised total row count; sites: whose releases were added; floored: inputs
    whose std was raised to the floor; negative_variance: inputs whose variance estimate came
    out negative (noise) and was set to 0 before flooring; mean_noise_std: first-order std of
    each published mean due to the noise (for reading |published - pooled|)."""

    names: tuple[str, ...]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    count: float
    sites: tuple[str, ...]
    floored: tuple[str, ...]
    negative_variance: tuple[str, ...]
    mean_noise_std: tuple[float, ...]
    version: str = GLOBAL_STATS_VERSION

    def to_json(self) -> bytes:
        return json.dumps(asdict(self), sort_keys=True).encode("utf-8")

    @staticmethod
    def from_json(data: bytes, where: str = "global feature statistics") -> GlobalStats:
        try:
            body = json.loads(data)
            for key in ("names", "mean", "std", "sites", "floored", "negative_variance"):
                body[key] = tuple(body[key])
            body["mean_noise_std"] = tuple(body["mean_noise_std"])
            stats = GlobalStats(**body)
        except (ValueError, TypeError, KeyError) as exc:
            raise StatsError(f"{where}: not valid global statistics ({exc})") from exc
        if stats.version != GLOBAL_STATS_VERSION:
            raise StatsError(f"{where}: unsupported version {stats.version!r}")
        if not all(math.isfinite(v) for v in stats.mean) or not all(
            math.isfinite(v) and v > 0 for v in stats.std
        ):
            raise StatsError(f"{where}: means must be finite and stds finite and > 0")
        return stats

    def scaler_arrays(
        self, contract: DataContract, ranges: StatsRanges
    ) -> tuple[np.ndarray, np.ndarray]:
        """(center, scale) per model input: the published mean/std on the numeric inputs,
        (0, 1) on one-hot and bool inputs; StatsError when the names do not match."""
        if tuple(self.names) != ranges.names:
            raise StatsError(
                f"contract {contract.name!r}: the published statistics cover "
                f"{len(self.names)} inputs that differ from the contract's numeric inputs"
            )
        center = np.zeros(contract.num_features, np.float64)
        scale = np.ones(contract.num_features, np.float64)
        center[list(ranges.index)] = self.mean
        scale[list(ranges.index)] = self.std
        return center, scale


def combine(stats: Sequence[SiteStats], ranges: StatsRanges) -> GlobalStats:
    """Global mean and std from the sites' noised releases (see the module docstring)."""
    if not stats:
        raise StatsError("no site released feature statistics: nothing to combine")
    for s in stats:
        if tuple(s.names) != ranges.names:
            raise StatsError(
                f"site {s.site_id}: its statistics name other inputs than the contract"
            )
    ids = [s.site_id for s in stats]
    if len(set(ids)) != len(ids):
        raise StatsError(f"a site released statistics twice: {sorted(ids)}")
    s1 = np.sum([s.sums for s in stats], axis=0)
    s2 = np.sum([s.sums_sq for s in stats], axis=0)
    n = float(sum(s.count for s in stats))
    if not n >= MIN_TOTAL_COUNT:
        raise StatsError(
            f"the noised total row count {n:.1f} of sites {', '.join(ids)} is below "
            f"{MIN_TOTAL_COUNT:g}: the noise swamps the statistics; raise the contract's "
            "encoding.statistics epsilon or add sites"
        )
    h, c = ranges.half_width, ranges.center
    centered_mean = np.clip(s1 / n, -h, h)
    variance = s2 / n - (s1 / n) ** 2
    negative = variance < 0
    variance = np.clip(variance, 0.0, h * h)
    var_s2 = np.sum([np.square(s.noise_std_sum_sq) for s in stats], axis=0)
    floor = np.maximum(
        np.maximum(STD_FLOOR_FRACTION * h, STD_FLOOR_ABS), np.sqrt(np.sqrt(var_s2) / n)
    )
    std = np.sqrt(variance)
    live = h > 0
    floored = live & (std < floor)
    std = np.where(live, np.maximum(std, floor), 1.0)  # a single-point range: constant input
    # First-order noise std of S1/N: sqrt(sum_k sd_s1^2 + (S1/N)^2 sum_k sd_n^2) / N.
    var_s1 = np.sum([np.square(s.noise_std_sum) for s in stats], axis=0)
    var_n = float(sum(s.noise_std_count**2 for s in stats))
    mean_noise = np.sqrt(var_s1 + centered_mean**2 * var_n) / n
    names = ranges.names
    return GlobalStats(
        names=names,
        mean=tuple(float(v) for v in c + centered_mean),
        std=tuple(float(v) for v in std),
        count=n,
        sites=tuple(ids),
        floored=tuple(nm for nm, f in zip(names, floored, strict=True) if f),
        negative_variance=tuple(nm for nm, f in zip(names, negative, strict=True) if f),
        mean_noise_std=tuple(float(v) for v in mean_noise),
    )


FEATURE_SCALING_KEY = "feature_scaling"  # global model meta key of the published statistics


def published_scaling(contract: DataContract, meta: dict) -> tuple[np.ndarray, np.ndarray] | None:
    """(center, scale) per model input from a global model's meta for a `federated_zscore`
    contract (StatsError when the meta carries none); None for any other scaling."""
    if contract.encoding.scaling != "federated_zscore":
        return None
    body = meta.get(FEATURE_SCALING_KEY)
    if not isinstance(body, dict):
        raise StatsError(
            f"contract {contract.name!r} scales with federated_zscore, and the global model "
            f"v{meta.get('version')} carries no {FEATURE_SCALING_KEY} (the statistics round "
            "did not run before initialize)"
        )
    published = GlobalStats.from_json(json.dumps(body).encode("utf-8"), where="global model meta")
    return published.scaler_arrays(contract, stats_ranges(contract))
