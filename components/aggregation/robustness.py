"""Byzantine-robustness experiment: federated softmax regression on scikit-learn's digits.

10 IID sites train locally (seeded minibatch SGD, numpy only) from the global model and send
their change Δ; f of them are malicious and send instead

* `sign_flip`: −Δ,   * `scaled`: −10·Δ,   * `gaussian`: N(0, σ²) with σ = 200,
* `label_flip`: the Δ of honest training on labels y → 9 − y (a data-poisoning site),
* `alie` ("a little is enough", Baruch et al. 2019): every attacker sends μ − z·σ, μ and σ the
  per-coordinate mean and standard deviation of the honest Δs (omniscient variant), z =
  Φ⁻¹((K − s)/K) with s = ⌊K/2 + 1⌋ − f, built to stay inside the honest spread so median,
  trimmed mean and Krum keep it,

or nothing (`absent`: the reference of FedAvg over the honest sites only). The sites can
also be a Dirichlet(α) non-IID split (`digits_federation(dirichlet_alpha=0.5)`: per class,
site shares drawn from Dir(α·1)), the setting where Krum is known to discard honest sites.
Each round also scores every update with `anomaly.score_round` (with each site's flag history
so far, as the aggregate task carries it in `site_health`) and counts the rounds each site was
flagged (`RunResult.flag_rate`).

The coordinator combines the Δs with a rule (`rules.aggregate`) and takes a plain FedAvg
step (x ← x + Δ̄). `accuracy_table` gives the held-out accuracy after the last round for
every (rule, attack, f), beside the clean FedAvg run. Each round also records how far the
combined Δ̄ follows the honest sites' mean m (`RunResult.shrink` = ⟨Δ̄, m⟩/‖m‖²) and how
spread the honest Δs are (`RunResult.spread` = ‖per-coordinate std‖/‖m‖). Pure except for
loading the bundled digits data; every random draw comes from a seeded
`numpy.random.Generator`.

Known limit (measured, `aggregation_robustness_bench`): with f = 3 of 10 sites attacking,
median and trimmed mean lose 1.3 points on average over the three attacks, but sign-flip or
scaled updates cost them up to 3.1 points (seed 1 of seeds 0..4) and 5.3 (seed 6 of 5..14;
there f = 2 also misses its 2-point limit: −2.7 median, −2.4 trimmed mean).
Not read-out noise: the clean run moves ≤ 0.7 points over its last 5 rounds (seeds 0..4),
the gap persists over the last 10 rounds and grows with more rounds (seed 1, worst of the
four: −3.1 / −3.8 / −4.5 points after 20 / 40 / 80 rounds). Cause: with 135 images per site
for 650 parameters the honest Δs differ mostly by their data (spread 0.35 at round 1, 2.1 at
round 20; reshuffling one site's batches explains only ≈ 5 % of that variance), and three
attackers on one side move a coordinate-wise median to the 2nd–3rd smallest of the 7 honest
values (measured, seeds 0/1: a typical coordinate lands 0.55–0.61 honest standard deviations
short of the honest mean at round 1, 0.38–0.48 at round 20, for median and trimmed mean),
so as the honest mean shrinks below its spread the combined step follows it less and less (shrink 0.83 at round 1, 0.32 at round 20 on seed 1) and the model settles at a worse
point. Trainer changes applied to every run (10 → 2, 3, 5 or 20 epochs, lr 0.05 / 0.1,
full-batch last epoch, full-batch training, in-round or per-round lr decay, L2 1e-3 to
3e-2) moved the mean sign-flip/scaled f = 3 gap of these two rules (−1.7 now) only to −1.4
to −2.3 and the worst over seeds 0..4 to −2.4 to −3.8; the three that stay within 3 points
there cost the clean run 1.1–3.3 points (2 epochs, full batches) or still miss on fresh seeds
(full-batch last epoch: −4.5 on seed 6). Class-stratified shards do not help either (worst
−3.3 at f = 3, −3.6 at f = 2 over seeds 0..9). Multi-Krum (f=3) stays within 1.8 points.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from statistics import NormalDist

import numpy as np

from components.aggregation.anomaly import score_round
from components.aggregation.rules import aggregate
from components.aggregation.server_optimizers import FedAvgStep
from components.aggregation.site_health import Health, advance, history
from components.common.tensors import Tensors

ATTACKS = ("sign_flip", "scaled", "gaussian")
LABEL_FLIP, ALIE = "label_flip", "alie"
ALL_ATTACKS = (*ATTACKS, LABEL_FLIP, ALIE)
ABSENT = "absent"  # reference: the f sites send nothing (FedAvg over the honest sites only)
GAUSSIAN_SIGMA = 200.0
SCALE = -10.0

# The defender's configuration: rules tuned for up to 3 Byzantine sites of 10.
ROBUST_RULES: dict[str, dict[str, float]] = {
    "median": {},
    "trimmed_mean": {"beta": 0.3},
    "multi_krum": {"f": 3},
}
ALL_RULES: dict[str, dict[str, float]] = {
    **ROBUST_RULES,
    "geometric_median": {},
    "centred_clipping": {},
    "screened_geometric_median": {},
}


@dataclass(frozen=True)
class SiteShards:
    """Per-site training data and a shared held-out test set (features scaled to [0, 1])."""

    sites: list[tuple[np.ndarray, np.ndarray]]
    x_test: np.ndarray
    y_test: np.ndarray
    n_classes: int


@dataclass(frozen=True)
class TrainConfig:
    """Local training: epochs of minibatch SGD on the softmax cross-entropy."""

    epochs: int = 10
    batch_size: int = 32
    learning_rate: float = 0.2
    rounds: int = 20


@dataclass(frozen=True)
class RunResult:
    """Per round (index 0 = round 1): test accuracy; `shrink` = ⟨Δ̄, m⟩/‖m‖² of the combined
    update Δ̄ on the honest sites' mean Δ m (1 = follows it exactly); `spread` = L2 norm of
    the per-coordinate standard deviation of the honest Δs over ‖m‖ (nan below 2 sites)."""

    rule: str
    attack: str | None
    n_malicious: int
    accuracy: list[float] = field(default_factory=list)
    shrink: list[float] = field(default_factory=list)
    spread: list[float] = field(default_factory=list)
    flagged: list[list[int]] = field(default_factory=list)  # per round: flagged site indices
    reasons: list[str] = field(default_factory=list)  # the first flagged reasons seen

    @property
    def final(self) -> float:
        return self.accuracy[-1]

    def flag_rate(self, sites: Sequence[int]) -> float:
        """Fraction of (round, site) pairs among `sites` whose update was flagged."""
        if not sites or not self.flagged:
            return float("nan")
        hits = sum(len(set(f) & set(sites)) for f in self.flagged)
        return hits / (len(sites) * len(self.flagged))


def digits_federation(
    n_sites: int = 10,
    test_fraction: float = 0.25,
    seed: int = 0,
    dirichlet_alpha: float | None = None,
) -> SiteShards:
    """scikit-learn's digits (1797 images 8×8, 10 classes), shuffled, split into a test set
    and `n_sites` equal IID shards, or with `dirichlet_alpha` a non-IID split: each class's
    training images go to the sites in shares drawn from Dir(α·1) (every site keeps at
    least one image)."""
    from sklearn.datasets import load_digits

    data = load_digits()
    x = (data.data / 16.0).astype(np.float32)
    y = data.target.astype(np.int64)
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(y))
    n_test = int(round(test_fraction * len(y)))
    test, train = order[:n_test], order[n_test:]
    if dirichlet_alpha is None:
        shards = np.array_split(train, n_sites)
    else:
        shards = dirichlet_shards(y, train, n_sites, dirichlet_alpha, rng)
    return SiteShards([(x[s], y[s]) for s in shards], x[test], y[test], int(y.max()) + 1)


def dirichlet_shards(
    y: np.ndarray, rows: np.ndarray, n_sites: int, alpha: float, rng: np.random.Generator
) -> list[np.ndarray]:
    """Split `rows` over the sites class by class in Dir(α·1) shares; a site left empty
    takes one image from the largest shard."""
    parts: list[list[int]] = [[] for _ in range(n_sites)]
    for label in np.unique(y[rows]):
        members = rows[y[rows] == label]
        shares = rng.dirichlet(np.full(n_sites, alpha))
        cuts = np.floor(np.cumsum(shares)[:-1] * len(members)).astype(int)
        for site, chunk in enumerate(np.split(members, cuts)):
            parts[site].extend(chunk.tolist())
    for site in range(n_sites):
        if not parts[site]:
            donor = max(range(n_sites), key=lambda s: len(parts[s]))
            parts[site].append(parts[donor].pop())
    return [np.array(sorted(p), dtype=np.int64) for p in parts]


def init_model(n_features: int, n_classes: int) -> Tensors:
    """All-zero softmax regression: {'kernel': (features, classes), 'bias': (classes,)}."""
    return {
        "kernel": np.zeros((n_features, n_classes), np.float32),
        "bias": np.zeros(n_classes, np.float32),
    }


def predict(model: Tensors, x: np.ndarray) -> np.ndarray:
    """Class scores (logits)."""
    return x @ model["kernel"] + model["bias"]


def accuracy(model: Tensors, x: np.ndarray, y: np.ndarray) -> float:
    return float(np.mean(np.argmax(predict(model, x), axis=1) == y))


def local_train(
    model: Tensors, x: np.ndarray, y: np.ndarray, cfg: TrainConfig, rng: np.random.Generator
) -> Tensors:
    """The site's model after `cfg.epochs` of minibatch SGD from `model` (not mutated)."""
    w, b = model["kernel"].copy(), model["bias"].copy()
    onehot = np.eye(w.shape[1], dtype=np.float32)[y]
    for _ in range(cfg.epochs):
        order = rng.permutation(len(y))
        for start in range(0, len(y), cfg.batch_size):
            idx = order[start : start + cfg.batch_size]
            logits = x[idx] @ w + b
            logits -= logits.max(axis=1, keepdims=True)
            p = np.exp(logits)
            p /= p.sum(axis=1, keepdims=True)
            grad = (p - onehot[idx]) / len(idx)
            w -= cfg.learning_rate * (x[idx].T @ grad)
            b -= cfg.learning_rate * grad.sum(axis=0)
    return {"kernel": w, "bias": b}


def attack_update(delta: Tensors, attack: str, rng: np.random.Generator) -> Tensors:
    """What a malicious site sends instead of its honest change `delta`."""
    if attack == "sign_flip":
        return {n: -v for n, v in delta.items()}
    if attack == "scaled":
        return {n: np.float32(SCALE) * v for n, v in delta.items()}
    if attack == "gaussian":
        return {
            n: rng.normal(0.0, GAUSSIAN_SIGMA, size=v.shape).astype(np.float32)
            for n, v in delta.items()
        }
    raise ValueError(f"unknown attack {attack!r}; choose from {ATTACKS}")


def alie_z(n_sites: int, n_malicious: int) -> float:
    """Baruch et al.'s z: Φ⁻¹((n − s)/n), s = ⌊n/2 + 1⌋ − f (sites the attackers need on
    their side); 0 when s ≥ n (nothing to gain)."""
    s = n_sites // 2 + 1 - n_malicious
    if s >= n_sites:
        return 0.0
    return NormalDist().inv_cdf((n_sites - s) / n_sites)


def alie_update(honest: Sequence[Tensors], z: float) -> Tensors:
    """μ − z·σ per coordinate over the honest updates (σ: population standard deviation)."""
    out = {}
    for n in honest[0]:
        stack = np.stack([h[n] for h in honest]).astype(np.float64)
        out[n] = (stack.mean(axis=0) - z * stack.std(axis=0)).astype(np.float32)
    return out


def follow_stats(combined: Tensors, honest: Sequence[Tensors]) -> tuple[float, float]:
    """(shrink, spread) of one round, see `RunResult`; float64 over all tensors; both nan
    when the honest mean is all zero."""
    names = sorted(combined)
    flat_c = np.concatenate([combined[n].ravel() for n in names]).astype(np.float64)
    rows = np.stack([np.concatenate([h[n].ravel() for n in names]) for h in honest])
    rows = rows.astype(np.float64)
    mean = rows.mean(axis=0)
    norm2 = float(mean @ mean)
    if norm2 == 0.0:
        return float("nan"), float("nan")
    spread = float("nan")
    if len(honest) >= 2:
        spread = float(np.linalg.norm(rows.std(axis=0, ddof=1)) / np.sqrt(norm2))
    return float(flat_c @ mean) / norm2, spread


def run_federation(
    fed: SiteShards,
    rule: str,
    rule_params: dict[str, float] | None = None,
    attack: str | None = None,
    n_malicious: int = 0,
    cfg: TrainConfig | None = None,
    seed: int = 0,
) -> RunResult:
    """Train `cfg.rounds` rounds (default `TrainConfig()`); sites 0..n_malicious-1 run
    `attack`. Same seed, same run."""
    cfg = cfg or TrainConfig()
    if n_malicious and attack is None:
        raise ValueError("n_malicious > 0 needs an attack")
    model = init_model(fed.x_test.shape[1], fed.n_classes)
    server = FedAvgStep(1.0)
    state = server.init_state(model)
    rngs = [np.random.default_rng([seed, s]) for s in range(len(fed.sites))]
    attack_rng = np.random.default_rng([seed, 10_000])
    result = RunResult(rule, attack, n_malicious)
    z = alie_z(len(fed.sites), n_malicious)
    health: Health = {}  # per-site flag history, as the aggregate task keeps it
    for _ in range(cfg.rounds):
        deltas, honest = [], []
        for s, (x, y) in enumerate(fed.sites):
            if s < n_malicious and attack == LABEL_FLIP:
                y = fed.n_classes - 1 - y
            local = local_train(model, x, y, cfg, rngs[s])
            delta = {n: local[n] - model[n] for n in model}
            if s < n_malicious:
                if attack == ABSENT:
                    continue
                if attack not in (LABEL_FLIP, ALIE):
                    delta = attack_update(delta, attack, attack_rng)  # type: ignore[arg-type]
            else:
                honest.append(delta)
            deltas.append(delta)
        if attack == ALIE:
            deltas[:n_malicious] = [alie_update(honest, z)] * n_malicious
        combined = aggregate(deltas, rule, **(rule_params or {}))
        shrink, spread = follow_stats(combined, honest)
        result.shrink.append(shrink)
        result.spread.append(spread)
        first = 0 if attack != ABSENT else n_malicious  # absent sites sent nothing
        scores = score_round(
            {f"site-{first + i}": d for i, d in enumerate(deltas)}, history=history(health)
        )
        health, _ = advance(health, scores, len(result.accuracy) + 1, None)
        result.flagged.append([int(sc.site[5:]) for sc in scores if sc.flagged])
        if len(result.reasons) < 3:
            result.reasons.extend([sc.explanation for sc in scores if sc.flagged][:1])
        model, state = server.apply(model, combined, state)
        result.accuracy.append(accuracy(model, fed.x_test, fed.y_test))
    return result


def accuracy_table(
    fed: SiteShards,
    rules: dict[str, dict[str, float]] = ROBUST_RULES,
    attacks: Sequence[str] = ATTACKS,
    malicious: Sequence[int] = (1, 2, 3),
    cfg: TrainConfig | None = None,
    seed: int = 0,
) -> tuple[RunResult, list[RunResult]]:
    """(clean FedAvg run, runs): the plain-mean control with one scaled site, FedAvg over
    the honest sites only (`absent`, the best any rule can do) for each f, then one run per
    rule × (no attack, each attack × f)."""
    cfg = cfg or TrainConfig()
    clean = run_federation(fed, "fedavg", cfg=cfg, seed=seed)
    runs = [run_federation(fed, "fedavg", None, "scaled", 1, cfg, seed)]
    runs += [run_federation(fed, "fedavg", None, ABSENT, f, cfg, seed) for f in malicious]
    for rule, params in rules.items():
        runs.append(run_federation(fed, rule, params, cfg=cfg, seed=seed))
        for attack in attacks:
            for f in malicious:
                runs.append(run_federation(fed, rule, params, attack, f, cfg, seed))
    return clean, runs


def non_iid_table(
    fed: SiteShards,
    rules: dict[str, dict[str, float]] = ALL_RULES,
    cfg: TrainConfig | None = None,
    seed: int = 0,
) -> tuple[RunResult, list[RunResult]]:
    """(FedAvg run, one run per rule) without attack, e.g. on a Dirichlet split."""
    clean = run_federation(fed, "fedavg", cfg=cfg, seed=seed)
    return clean, [run_federation(fed, r, p, cfg=cfg, seed=seed) for r, p in rules.items()]


def gap_points(run: RunResult, clean: RunResult, n_test: int) -> float:
    """Accuracy difference run − clean in points, from whole test-sample counts (so a gap
    of exactly 9 of 450 samples is exactly -2.0, not -2.0000000000000018)."""
    return 100.0 * (round(run.final * n_test) - round(clean.final * n_test)) / n_test


def format_table(clean: RunResult, runs: Sequence[RunResult]) -> str:
    """Markdown table of final accuracies (percent) and the gap to the clean FedAvg run."""
    lines = [
        f"clean FedAvg (no attack): {100 * clean.final:.1f} %",
        "",
        "| rule | attack | f | accuracy % | vs clean (points) |",
        "|---|---|---|---|---|",
    ]
    for r in runs:
        gap = 100 * (r.final - clean.final)
        lines.append(
            f"| {r.rule} | {r.attack or 'none'} | {r.n_malicious} | {100 * r.final:.1f} | "
            f"{gap:+.1f} |"
        )
    return "\n".join(lines)
