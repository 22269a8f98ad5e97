"""Distributed DP (Skellam on the SecAgg sum) against local DP-SGD at the same epsilon: digits,
10 sites, the same rounds, seeded. `python -m pipelines.benchmarks.ddp_bench [--rounds R]
[--epsilon E] [--honest H ...]`.

Both modes start from the same seeded logistic regression and the same split of scikit-learn's
digits over 10 sites (`pipelines.simulate.data.federated_data`, the pipeline's own split and
site scaling), train `local_epochs` epochs per round at each site with the same learning rate
and batch size, and average the 10 sites' deltas with uniform weights (FedAvg, server learning
rate 1). Accuracy is on the pooled test set.

* local: DP-SGD at every site (`components.train.dpsgd.train_dp_sgd`, Poisson sampling,
  per-example clip 1.0); the noise multiplier is the smallest (to 1e-3) for which the site with
  the fewest rows spends at most `--epsilon` over the rounds (RDP, delta 1e-5, the accountant
  of the ledger).
* distributed (h = 10 and h = 5): every site trains without per-example noise (plain SGD on
  shuffled batches), clips its model delta to L2 norm C, scales by gamma (rounding adds <= 1 %
  to the sensitivity), rounds, adds Skellam(mu / h) (`components.privacy.skellam.site_vector`);
  mu is the smallest variance whose `rounds` releases spend at most `--epsilon`
  (`mu_for`). The integer vectors go through the SecAgg+ masking core in process
  (`components.secagg.masking.masked_vector`, ChaCha20 pairwise and self masks mod 2^64; the
  self masks are removed with the seeds directly instead of Shamir shares): the bench checks
  that the unmasked sum equals the plain sum of the sites' vectors exactly, then decodes it.
  With h = 5 every site adds mu / 5, so the sum of 10 honest sites carries 2 mu: the price of
  assuming only half of them honest.

Prints epsilon, delta, noise parameters and accuracy per mode; exit 1 when the SecAgg sum
differs from the plain sum or a mode's epsilon exceeds the target.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np

DATASET = "digits"
MODEL = "logreg"
SITES = tuple(f"site-{i:02d}" for i in range(10))
DELTA = 1e-5
BATCH_SIZE = 16
LOCAL_EPOCHS = 1
LEARNING_RATE = 0.5
EXAMPLE_CLIP = 1.0
DELTA_CLIP = 1.0
MODULUS_BITS = 64
SEED = 0


@dataclass(frozen=True)
class Outcome:
    mode: str
    epsilon: float
    accuracy: float
    noise: str
    seconds: float
    clipped: float = 0.0  # share of site deltas the clip shrank (distributed)
    median_norm: float = 0.0  # median L2 norm of the site deltas before clipping (distributed)
    target: float = math.inf  # the epsilon the mode was calibrated to


def _flat(tensors: Mapping[str, np.ndarray]) -> np.ndarray:
    return np.concatenate([np.asarray(tensors[k], np.float64).ravel() for k in sorted(tensors)])


def _unflat(vector: np.ndarray, like: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    out, at = {}, 0
    for k in sorted(like):
        shape = np.shape(like[k])
        size = int(np.prod(shape))
        out[k] = vector[at : at + size].reshape(shape).astype(np.float32)
        at += size
    return out


def local_noise_for(epsilon: float, sizes: Sequence[int], rounds: int) -> tuple[float, float]:
    """The smallest noise multiplier (to 1e-3) whose `rounds` DP-SGD trainings spend at most
    `epsilon` at the smallest site; (multiplier, that site's epsilon)."""
    from components.privacy.accounting import dp_sgd_event, rdp_epsilon

    n = min(sizes)

    def spent(sigma: float) -> float:
        event = dp_sgd_event(n, BATCH_SIZE, LOCAL_EPOCHS, sigma)
        return rdp_epsilon([event] * rounds, DELTA)

    low, high = 0.3, 1.0
    while spent(high) > epsilon:
        low, high = high, high * 2
    while high - low > 1e-3:
        mid = (low + high) / 2
        low, high = (mid, high) if spent(mid) > epsilon else (low, mid)
    return high, spent(high)


def secure_sum(words: Mapping[str, np.ndarray], seed: int) -> np.ndarray:
    """Mask every site's words (SecAgg+ core), sum mod 2^64, remove the self masks;
    ValueError unless the result equals the plain sum of the words mod 2^64."""
    from components.secagg.masking import masked_vector
    from components.secagg.prg import mask
    from components.secagg.rand import seeded_random

    rand = seeded_random(seed)
    ids = sorted(words)
    self_seeds = {s: rand(32) for s in ids}
    pair = {(a, b): rand(32) for i, a in enumerate(ids) for b in ids[i + 1 :]}
    total = np.zeros(next(iter(words.values())).size, dtype=np.uint64)
    for s in ids:
        seeds = {o: pair[(min(s, o), max(s, o))] for o in ids if o != s}
        total += masked_vector(words[s], self_seeds[s], seeds, s, MODULUS_BITS)
    for s in ids:
        total -= mask(self_seeds[s], total.size, MODULUS_BITS)
    plain = np.zeros_like(total)
    for s in ids:
        plain += words[s]
    if not np.array_equal(total, plain):
        raise ValueError("SecAgg: the unmasked sum differs from the plain sum of the words")
    return total


def run_local(data, init, rounds: int, sigma: float) -> dict[str, np.ndarray]:
    from components.train.dpsgd import DpSgdConfig

    config = DpSgdConfig(BATCH_SIZE, LOCAL_EPOCHS, LEARNING_RATE, sigma, EXAMPLE_CLIP)
    return _fedavg_rounds(data, init, rounds, config, "ddp-bench-local")


def run_plain(data, init, rounds: int) -> dict[str, np.ndarray]:
    """The reference without DP: plain SGD at every site, FedAvg of the unclipped deltas."""
    from components.train.dpsgd import DpSgdConfig

    config = DpSgdConfig(BATCH_SIZE, LOCAL_EPOCHS, LEARNING_RATE, 0.0, 0.0, dp_enabled=False)
    return _fedavg_rounds(data, init, rounds, config, "ddp-bench-plain")


def _fedavg_rounds(data, init, rounds: int, config, stream: str) -> dict[str, np.ndarray]:
    """`rounds` of `train_dp_sgd` with `config` at every site (seeds from `stream`), then an
    unweighted FedAvg of the local models."""
    from components.train.dpsgd import train_dp_sgd
    from pipelines.simulate.spec import fedavg_step, shuffle_seed_for

    model = dict(init)
    for r in range(1, rounds + 1):
        local = []
        for s in SITES:
            seed = shuffle_seed_for(SEED, s, stream, r)
            site = data.sites[s]
            trained = train_dp_sgd(
                MODEL, model, site.x, site.y, data.num_classes, config,
                sampling_seed=seed, noise_seed=seed,
            )  # fmt: skip
            local.append(trained.tensors)
        model = fedavg_step(model, local, [1.0] * len(local))
    return model


def run_distributed(data, init, rounds: int, plan) -> tuple[dict[str, np.ndarray], float, float]:
    """Distributed DP with `plan` (its h): plain SGD, `encode_distributed` at each site, the
    masked sum, `decode_distributed` at the coordinator."""
    from components.privacy.skellam import decode_distributed, encode_distributed, seeded_uniform
    from components.train.dpsgd import DpSgdConfig, train_dp_sgd
    from pipelines.simulate.spec import shuffle_seed_for

    config = DpSgdConfig(BATCH_SIZE, LOCAL_EPOCHS, LEARNING_RATE, 0.0, 0.0, dp_enabled=False)
    model = {k: np.asarray(v, np.float32) for k, v in init.items()}
    norms: list[float] = []
    for r in range(1, rounds + 1):
        start = _flat(model)
        words = {}
        for i, s in enumerate(SITES):
            seed = shuffle_seed_for(SEED, s, f"ddp-bench-h{plan.honest_sites}", r)
            site = data.sites[s]
            trained = train_dp_sgd(
                MODEL, model, site.x, site.y, data.num_classes, config,
                sampling_seed=seed, noise_seed=seed,
            )  # fmt: skip
            delta = _flat(trained.tensors) - start
            words[s], vec = encode_distributed(delta, plan, seeded_uniform(seed + i), MODULUS_BITS)
            norms.append(vec.norm)
        total = secure_sum(words, seed=r)
        mean = decode_distributed(total, len(SITES), plan, MODULUS_BITS, len(SITES))
        model = _unflat(start + mean, model)
    return model, float(np.mean(np.array(norms) > DELTA_CLIP)), float(np.median(norms))


def compare(data, init, spec, sizes, dim, target, rounds, honest) -> list[Outcome]:
    """Local DP-SGD and distributed Skellam (one row per h) at the same target epsilon."""
    from components.privacy.skellam import plan_for, skellam_epsilon
    from pipelines.simulate.reference import accuracy

    outcomes = []
    t0 = time.perf_counter()
    sigma, eps_local = local_noise_for(target, sizes, rounds)
    local_model = run_local(data, init, rounds, sigma)
    outcomes.append(
        Outcome(
            "local DP-SGD",
            eps_local,
            accuracy(spec, data, local_model),
            f"noise multiplier {sigma:.3f}, per-example clip {EXAMPLE_CLIP:g}, Poisson q "
            f"{BATCH_SIZE / min(sizes):.3f} (smallest site)",
            time.perf_counter() - t0,
        )
    )
    plan = plan_for(target, DELTA, clip=DELTA_CLIP, dim=dim, honest_sites=1, rounds=rounds)
    gamma, mu = plan.gamma, plan.mu
    eps_dist = skellam_epsilon(mu, plan.sensitivity, DELTA, rounds=rounds)

    def noise_std(h: int) -> float:  # of the decoded average: sqrt(n mu / h) / (gamma n)
        return float(np.sqrt(mu * len(SITES) / h) / (gamma * len(SITES)))

    for h in honest:
        t0 = time.perf_counter()
        model, clipped, median_norm = run_distributed(
            data, init, rounds, replace(plan, honest_sites=h)
        )
        outcomes.append(
            Outcome(
                f"distributed h={h}",
                eps_dist,
                accuracy(spec, data, model),
                f"Skellam mu {mu:.4g}, share mu/{h} per site, gamma {gamma:.4g}, delta clip "
                f"{DELTA_CLIP:g}: noise of the averaged delta {noise_std(h):.3g} per "
                f"coordinate, L2 norm {noise_std(h) * np.sqrt(dim):.3g}",
                time.perf_counter() - t0,
                clipped,
                median_norm,
            )
        )
    return [replace(o, target=target) for o in outcomes]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument(
        "--epsilon", type=float, nargs="+", default=[8.0], help="per site over the rounds"
    )
    parser.add_argument("--no-plain", action="store_true", help="skip the no-DP reference")
    parser.add_argument("--honest", type=int, nargs="+", default=[10, 5])
    args = parser.parse_args(argv)

    from components.train.models import initial_weights
    from pipelines.simulate.data import federated_data
    from pipelines.simulate.reference import accuracy
    from pipelines.simulate.spec import FederationSpec

    spec = FederationSpec(DATASET, SITES, model_name=MODEL, rounds=args.rounds)
    data = federated_data(DATASET, SITES, data_seed=SEED)
    init = initial_weights(MODEL, data.num_features, data.num_classes, SEED)
    sizes = [len(data.sites[s].y) for s in SITES]
    dim = _flat(init).size
    print(
        f"digits over {len(SITES)} sites (training rows {min(sizes)}..{max(sizes)}), {MODEL} "
        f"(P = {dim}), {args.rounds} rounds, {LOCAL_EPOCHS} local epoch(s), batch {BATCH_SIZE}, "
        f"lr {LEARNING_RATE}; target epsilon {', '.join(f'{e:g}' for e in args.epsilon)} per "
        "site over the run, "
        f"delta {DELTA:g}, seed {SEED}"
    )
    outcomes = []
    if not args.no_plain:
        t0 = time.perf_counter()
        plain = run_plain(data, init, args.rounds)
        outcomes.append(
            Outcome(
                "no DP (reference)",
                float("inf"),
                accuracy(spec, data, plain),
                "plain SGD, FedAvg of the unclipped deltas",
                time.perf_counter() - t0,
            )
        )
    for target in args.epsilon:
        outcomes += compare(data, init, spec, sizes, dim, target, args.rounds, args.honest)
    print(
        f"{'target':>6} {'mode':<18} {'epsilon':>8} {'delta':>7} {'accuracy':>8} {'seconds':>7}  noise"
    )
    for o in outcomes:
        extra = (
            f"; site deltas: median norm {o.median_norm:.3g}, {100 * o.clipped:.0f} % clipped"
            if o.mode.startswith("distributed")
            else ""
        )
        print(
            f"{o.target:>6g} {o.mode:<18} {o.epsilon:>8.3f} {DELTA:>7.0e} {o.accuracy:>8.4f} {o.seconds:>7.1f}  "
            f"{o.noise}{extra}"
        )
    over = [f"{o.mode} at {o.target:g}" for o in outcomes if o.epsilon > o.target + 1e-9]
    if over:
        print(f"epsilon above the target for: {', '.join(over)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
