"""Byzantine-robustness experiment: federated softmax regression on scikit-learn's digits.

10 IID sites train locally (seeded minibatch SGD, numpy only) from the global model and send
their change Δ; f of them are malicious and send instead

* `sign_flip`: −Δ,   * `scaled`: −10·Δ,   * `gaussian`: N(0, σ²) with σ = 200,

or nothing (`absent`: the reference of FedAvg over the honest sites only).

The coordinator combines the Δs with a rule (`rules.aggregate`) and takes a plain FedAvg
step (x ← x + Δ̄). `accuracy_table` gives the held-out accuracy after the last round for
every (rule, attack, f), beside the clean FedAvg run. Pure except for loading the bundled
digits data; every random draw comes from a seeded `numpy.random.Generator`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from components.aggregation.rules import aggregate
from components.aggregation.server_optimizers import FedAvgStep

Tensors = dict[str, np.ndarray]
ATTACKS = ("sign_flip", "scaled", "gaussian")
ABSENT = "absent"  # reference: the f sites send nothing (FedAvg over the honest sites only)
GAUSSIAN_SIGMA = 200.0
SCALE = -10.0

# The defender's configuration: rules tuned for up to 3 Byzantine sites of 10.
ROBUST_RULES: dict[str, dict[str, float]] = {
    "median": {},
    "trimmed_mean": {"beta": 0.3},
    "multi_krum": {"f": 3},
}


@dataclass(frozen=True)
class Federation:
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
    """Test accuracy after each round (index 0 = after round 1)."""

    rule: str
    attack: str | None
    n_malicious: int
    accuracy: list[float] = field(default_factory=list)

    @property
    def final(self) -> float:
        return self.accuracy[-1]


def digits_federation(n_sites: int = 10, test_fraction: float = 0.25, seed: int = 0) -> Federation:
    """scikit-learn's digits (1797 images 8×8, 10 classes), shuffled, split into a test set
    and `n_sites` equal IID shards."""
    from sklearn.datasets import load_digits

    data = load_digits()
    x = (data.data / 16.0).astype(np.float32)
    y = data.target.astype(np.int64)
    order = np.random.default_rng(seed).permutation(len(y))
    n_test = int(round(test_fraction * len(y)))
    test, train = order[:n_test], order[n_test:]
    shards = np.array_split(train, n_sites)
    return Federation([(x[s], y[s]) for s in shards], x[test], y[test], int(y.max()) + 1)


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


def run_federation(
    fed: Federation,
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
    for _ in range(cfg.rounds):
        deltas = []
        for s, (x, y) in enumerate(fed.sites):
            local = local_train(model, x, y, cfg, rngs[s])
            delta = {n: local[n] - model[n] for n in model}
            if s < n_malicious:
                if attack == ABSENT:
                    continue
                delta = attack_update(delta, attack, attack_rng)  # type: ignore[arg-type]
            deltas.append(delta)
        combined = aggregate(deltas, rule, **(rule_params or {}))
        model, state = server.apply(model, combined, state)
        result.accuracy.append(accuracy(model, fed.x_test, fed.y_test))
    return result


def accuracy_table(
    fed: Federation,
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
