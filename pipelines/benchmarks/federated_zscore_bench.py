"""`federated_zscore` on a label-skewed split: published statistics vs pooled, and accuracy.

Sites' own rows: the dataset (digits, breast cancer; the bundled contracts' columns and ranges)
is split over the example federation's three sites with a Dirichlet(ALPHA) label skew
(`components.datasets.prepare.split_federation`). Printed per dataset:

1. **Within the DP noise.** Each site releases its statistics with the noise multiplier that
   spends STATS_EPSILON at DELTA (RDP; `noise_multiplier_for`), the coordinator combines them
   (`combine`); compared with the pooled statistics of all sites' training rows (clipped to the
   ranges, which the bundled data never leave): max over features of |published - pooled| for
   the mean and the variance, and the same divided by the first-order noise std of each
   (`GlobalStats.mean_noise_std`; `variance_noise_std` below), over NOISE_DRAWS noise draws.
2. **Accuracy.** The same federated training for every scaling: FedAvg of the `logreg` model
   (softmax regression) in numpy, ROUNDS rounds x LOCAL_EPOCHS local epochs of minibatch SGD,
   sites weighted by rows, DP-SGD *off* (the comparison is about scaling, not about training
   noise; the DP-SGD training path is TensorFlow and is exercised by the pipeline's tests).
   Scalings: per-site z-score (each site fits mean/std on its own training rows and scales its
   training and holdout rows with them), federated z-score from exact statistics (z = 0) and
   from DP statistics (STATS_EPSILON). Reported: accuracy on the sites' holdouts (rows-weighted,
   each site scaling as it would) and on the pooled test set (for the per-site z-score: the
   mean over the three sites' scalers), over SPLITS split seeds.

Run: `python -m pipelines.benchmarks.federated_zscore_bench` (about 10 s, numpy only).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

import numpy as np

from components.datasets.features import Scaler, fit_scaler, frame_to_arrays, numeric_mask
from components.datasets.federated_stats import (
    GlobalStats,
    StatsRanges,
    combine,
    noise_multiplier_for,
    site_statistics,
    stats_ranges,
)
from components.domain.contract import DataContract

SITES = ("hospital-berlin", "hospital-paris", "clinic-boston")
ALPHA = 0.3
STATS_EPSILON = 1.0
DELTA = 1e-5
NOISE_DRAWS = 20
SPLITS = 5
ROUNDS = 20
LOCAL_EPOCHS = 2
BATCH = 32
LEARNING_RATE = 0.1


@dataclass(frozen=True)
class SiteRows:
    """One site's unscaled model inputs and class indices."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_holdout: np.ndarray
    y_holdout: np.ndarray


@dataclass(frozen=True)
class Split:
    sites: dict[str, SiteRows]
    x_test: np.ndarray
    y_test: np.ndarray


def load_split(contract: DataContract, seed: int, alpha: float = ALPHA) -> Split:
    """The bundled dataset split over SITES with Dirichlet(alpha) label skew (seeded)."""
    from components.datasets.prepare import load_frame, split_federation

    fed = split_federation(
        load_frame(contract), contract, list(SITES), np.random.default_rng(seed), alpha=alpha
    )
    sites = {}
    for site_id, part in fed.sites.items():
        xt, yt = frame_to_arrays(contract, part.train, site_id)
        xh, yh = frame_to_arrays(contract, part.holdout, site_id)
        sites[site_id] = SiteRows(xt, yt, xh, yh)
    x_test, y_test = frame_to_arrays(contract, fed.test, "pooled-test")
    return Split(sites, x_test, y_test)


def pooled_moments(split: Split, ranges: StatsRanges) -> tuple[np.ndarray, np.ndarray]:
    """Mean and population variance of all sites' clipped training rows, per released input."""
    x = np.concatenate([s.x_train for s in split.sites.values()])[:, list(ranges.index)]
    x = np.clip(x, ranges.low, ranges.high)
    return x.mean(axis=0), x.var(axis=0)


def publish(
    split: Split, ranges: StatsRanges, noise_multiplier: float, rng: np.random.Generator
) -> GlobalStats:
    """Every site's release, combined as the coordinator does."""
    releases = [
        site_statistics(s.x_train, ranges, site_id=sid, noise_multiplier=noise_multiplier, rng=rng)
        for sid, s in split.sites.items()
    ]
    return combine(releases, ranges)


def variance_noise_std(split: Split, ranges: StatsRanges, noise_multiplier: float) -> np.ndarray:
    """First-order (delta method) noise std of the published variance S2/N - (S1/N)^2 at the
    true sums: sqrt(K sd_s2^2 + (2 S1/N^2)^2 K sd_s1^2 + (S2/N^2 - 2 S1^2/N^3)^2 K sd_n^2)."""
    from components.datasets.federated_stats import noise_stds

    x = np.concatenate([s.x_train for s in split.sites.values()])[:, list(ranges.index)]
    centered = np.clip(x, ranges.low, ranges.high) - ranges.center
    n = float(len(x))
    s1, s2 = centered.sum(axis=0), (centered**2).sum(axis=0)
    sd_s1, sd_s2, sd_n = noise_stds(ranges, noise_multiplier)
    k = len(split.sites)
    return np.sqrt(
        k * sd_s2**2 / n**2
        + (2 * s1 / n**2) ** 2 * k * sd_s1**2
        + (s2 / n**2 - 2 * s1**2 / n**3) ** 2 * k * sd_n**2
    )


@dataclass(frozen=True)
class NoiseFigures:
    noise_multiplier: float
    max_mean_error: float  # data units, over features and draws
    max_mean_sigmas: float  # |Δ mean| / mean noise std, max over features and draws
    mean_noise_std: float  # median over features of the mean's noise std
    max_var_sigmas: float  # |Δ variance| / variance noise std, max
    max_std_error: float  # data units
    floored: int  # features floored in the last draw
    negative_variance: int


def noise_figures(
    contract: DataContract, split: Split, draws: int = NOISE_DRAWS, seed: int = 0
) -> NoiseFigures:
    """Published (DP, STATS_EPSILON) vs pooled statistics over `draws` seeded noise draws."""
    ranges = stats_ranges(contract)
    z = noise_multiplier_for(STATS_EPSILON, DELTA)
    mean, var = pooled_moments(split, ranges)
    sd_var = variance_noise_std(split, ranges, z)
    rng = np.random.default_rng(seed)
    worst = np.zeros(5)
    published = None
    for _ in range(draws):
        published = publish(split, ranges, z, rng)
        d_mean = np.abs(np.asarray(published.mean) - mean)
        var_hat = np.asarray(published.std) ** 2
        d_var = np.abs(var_hat - var)
        worst = np.maximum(
            worst,
            [
                d_mean.max(),
                (d_mean / np.asarray(published.mean_noise_std)).max(),
                0.0,
                (d_var / sd_var).max(),
                np.abs(np.asarray(published.std) - np.sqrt(var)).max(),
            ],
        )
    assert published is not None
    return NoiseFigures(
        noise_multiplier=z,
        max_mean_error=float(worst[0]),
        max_mean_sigmas=float(worst[1]),
        mean_noise_std=float(np.median(published.mean_noise_std)),
        max_var_sigmas=float(worst[3]),
        max_std_error=float(worst[4]),
        floored=len(published.floored),
        negative_variance=len(published.negative_variance),
    )


def site_zscore(contract: DataContract, x_train: np.ndarray) -> Scaler:
    """The per-site z-score (`encoding.scaling: site_zscore`) fitted on one site's rows."""
    from components.domain.contract import Encoding

    site = contract.copy(update={"encoding": Encoding(scaling="site_zscore")})
    return fit_scaler(site, x_train)


def fedavg_logreg(
    sites: list[tuple[np.ndarray, np.ndarray]], num_classes: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """FedAvg of softmax regression: (kernel, bias) after ROUNDS rounds (numpy, DP off)."""
    rng = np.random.default_rng(seed)
    d = sites[0][0].shape[1]
    w, b = np.zeros((d, num_classes)), np.zeros(num_classes)
    weights = np.asarray([len(x) for x, _ in sites], float)
    weights /= weights.sum()
    for _ in range(ROUNDS):
        new_w, new_b = np.zeros_like(w), np.zeros_like(b)
        for (x, y), share in zip(sites, weights, strict=True):
            lw, lb = w.copy(), b.copy()
            for _ in range(LOCAL_EPOCHS):
                order = rng.permutation(len(x))
                for start in range(0, len(x), BATCH):
                    idx = order[start : start + BATCH]
                    logits = x[idx] @ lw + lb
                    p = np.exp(logits - logits.max(axis=1, keepdims=True))
                    p /= p.sum(axis=1, keepdims=True)
                    p[np.arange(len(idx)), y[idx]] -= 1.0
                    lw -= LEARNING_RATE * x[idx].T @ p / len(idx)
                    lb -= LEARNING_RATE * p.mean(axis=0)
            new_w += share * lw
            new_b += share * lb
        w, b = new_w, new_b
    return w, b


def _accuracy(w: np.ndarray, b: np.ndarray, x: np.ndarray, y: np.ndarray) -> float:
    return float(np.mean(np.argmax(x @ w + b, axis=1) == y))


@dataclass(frozen=True)
class Accuracy:
    holdout: float  # rows-weighted over the sites' holdouts
    test: float  # pooled test set


def accuracy(
    contract: DataContract, split: Split, scalers: dict[str, Scaler], seed: int
) -> Accuracy:
    """Train with each site scaling by `scalers[site]`; score holdouts and the pooled test."""
    sites = [(scalers[s].transform(r.x_train), r.y_train) for s, r in split.sites.items()]
    w, b = fedavg_logreg(sites, contract.num_outputs, seed)
    hits = rows = 0.0
    for site_id, r in split.sites.items():
        hits += _accuracy(w, b, scalers[site_id].transform(r.x_holdout), r.y_holdout) * len(
            r.y_holdout
        )
        rows += len(r.y_holdout)
    test = np.mean(
        [_accuracy(w, b, sc.transform(split.x_test), split.y_test) for sc in scalers.values()]
    )
    return Accuracy(hits / rows, float(test))


def scalings(contract: DataContract, split: Split, seed: int) -> dict[str, dict[str, Scaler]]:
    """Per-site z-score, federated z-score from exact and from DP statistics."""
    ranges = stats_ranges(contract)
    per_site = {s: site_zscore(contract, r.x_train) for s, r in split.sites.items()}
    out = {"site_zscore": per_site}
    for name, z in (
        ("federated_zscore exact", 0.0),
        (f"federated_zscore ε={STATS_EPSILON:g}", noise_multiplier_for(STATS_EPSILON, DELTA)),
    ):
        published = publish(split, ranges, z, np.random.default_rng(seed))
        scaler = Scaler(*published.scaler_arrays(contract, ranges))
        out[name] = dict.fromkeys(split.sites, scaler)
    assert numeric_mask(contract).sum() == len(ranges.index)
    return out


def main() -> int:
    from pipelines.config.loader import contract_by_name

    print(
        f"federated_zscore, {len(SITES)} sites, Dirichlet({ALPHA}) label skew; statistics "
        f"release ε {STATS_EPSILON:g} at δ {DELTA:g} (RDP) per site"
    )
    for name in ("digits", "breast_cancer"):
        contract = contract_by_name(name)
        split = load_split(contract, 0)
        sizes = ", ".join(f"{s} {len(r.y_train)}" for s, r in split.sites.items())
        f = noise_figures(contract, split)
        print(f"\n{name}: training rows {sizes}; noise multiplier z {f.noise_multiplier:.3f}")
        print(
            f"  published vs pooled over {NOISE_DRAWS} noise draws, max over "
            f"{len(stats_ranges(contract).index)} features: |Δ mean| {f.max_mean_error:.4g} "
            f"(median noise std of a mean {f.mean_noise_std:.4g}) = {f.max_mean_sigmas:.2f} "
            f"noise std; |Δ variance| {f.max_var_sigmas:.2f} noise std; |Δ std| "
            f"{f.max_std_error:.4g}; floored {f.floored}, negative variance "
            f"{f.negative_variance} (last draw)"
        )
        table: dict[str, list[Accuracy]] = {}
        for seed in range(SPLITS):
            split = load_split(contract, seed)
            for label, scalers in scalings(contract, split, seed).items():
                table.setdefault(label, []).append(accuracy(contract, split, scalers, seed))
        print(
            f"  accuracy, FedAvg logreg {ROUNDS} rounds x {LOCAL_EPOCHS} epochs, DP-SGD off, "
            f"{SPLITS} splits (mean [min, max]):"
        )
        for label, accs in table.items():
            hold = np.asarray([a.holdout for a in accs])
            test = np.asarray([a.test for a in accs])
            print(
                f"    {label:<26} site holdouts {hold.mean():.4f} [{hold.min():.4f}, "
                f"{hold.max():.4f}]  pooled test {test.mean():.4f} [{test.min():.4f}, "
                f"{test.max():.4f}]"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
