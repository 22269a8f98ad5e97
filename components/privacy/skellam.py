"""Distributed DP with the Skellam mechanism (Agarwal, Kairouz, Liu 2021), pure: no I/O, no TF.

`dp.mode: distributed`. Each site trains *without* per-example noise, clips its model delta x
to L2 norm C, scales it by gamma and rounds every coordinate to the nearest integer
(z = round(gamma * clip(x))), then adds integer Skellam noise of variance mu / h per coordinate,
h = `dp.min_honest_sites`. Skellam(m) here is Poisson(m / 2) - Poisson(m / 2): mean 0, variance m,
integer valued and closed under summation, so when at least h sites add their share honestly
the sum the coordinator unmasks (SecAgg: it sees only that sum) carries Skellam(mu) or more
per coordinate. The privacy proof is about that sum: it is exact under summation, no
approximation of a sum of discrete noises by a continuous one is involved.

Sensitivity (record level, add-or-remove-one record, as the local mode's ledger): one record
changes only its own site's z, and both the old and the new z lie in the L2 ball of radius
gamma C + sqrt(P) / 2 (clipping, then rounding moves each of the P coordinates by <= 1/2), so
  Delta_2 = 2 gamma C + sqrt(P)                 (`record_sensitivity`)
  Delta_1 = min(sqrt(P) Delta_2, Delta_2^2)      (Cauchy-Schwarz; and for an integer vector
                                                  sum |d_j| <= sum d_j^2)
RDP (the paper's bound for the multi-dimensional Skellam mechanism with variance mu, integer
order alpha > 1):
  eps(alpha) <= alpha Delta_2^2 / (2 mu)
               + min(((2 alpha - 1) Delta_2^2 + 6 Delta_1) / (4 mu^2), 3 Delta_1 / (2 mu))
Its first term is the Gaussian mechanism's RDP at variance mu. At a fractional order the bound of
ceil(alpha) is used (Renyi divergence does not decrease with the order), so a Skellam round
composes with DP-SGD rounds at `dp_accounting`'s default orders and is converted to
(eps, delta) by the same `rdp.compute_epsilon` (`components.privacy.accounting.rdp_epsilon`).
One release per round, no subsampling amplification is claimed (the whole site delta is the
query). Rounds compose by adding RDP.

Noise source: Poisson variates by Hoermann's PTRS transformed rejection (lambda >= 10) and by
multiplication of uniforms (lambda < 10), driven by an injected uniform source: the OS CSPRNG
(`os_uniform`, 53 random bits per draw) in production, a seeded generator in tests.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.special import gammaln

from components.privacy.uniform import (  # noqa: F401 (re-exported)
    Uniform,
    os_uniform,
    seeded_uniform,
)

MODE_LOCAL = "local"
MODE_DISTRIBUTED = "distributed"
DP_MODES = (MODE_LOCAL, MODE_DISTRIBUTED)
MU_SEARCH_MAX = 1e30
DEFAULT_ROUNDING_INFLATION = 0.01  # rounding adds at most 1 % to the L2 sensitivity
# The L2 clip C of a site's model delta in the pipeline (a compiled constant, not a policy field).
DISTRIBUTED_DELTA_CLIP = 1.0


class SkellamError(ValueError):
    """Parameters the Skellam mechanism cannot work with (mu <= 0, h < 1, ...)."""


def _positive(value: float, what: str) -> float:
    if not (math.isfinite(value) and value > 0):
        raise SkellamError(f"{what} {value} must be a finite number > 0")
    return float(value)


@dataclass(frozen=True)
class Sensitivity:
    """L2 and L1 sensitivity of one site's rounded, scaled vector (integer units)."""

    l2: float
    l1: float


def record_sensitivity(clip: float, gamma: float, dim: int) -> Sensitivity:
    """Delta_2 = 2 gamma C + sqrt(P), Delta_1 = min(sqrt(P) Delta_2, Delta_2^2) (module doc)."""
    _positive(clip, "delta clip norm C")
    _positive(gamma, "scale gamma")
    if dim < 1:
        raise SkellamError(f"dimension P {dim} must be >= 1")
    l2 = 2.0 * gamma * clip + math.sqrt(dim)
    return Sensitivity(l2=l2, l1=min(math.sqrt(dim) * l2, l2 * l2))


def gamma_for(clip: float, dim: int, inflation: float = DEFAULT_ROUNDING_INFLATION) -> float:
    """The scale whose rounding adds at most `inflation` to the L2 sensitivity:
    sqrt(P) <= inflation * 2 gamma C, i.e. gamma = sqrt(P) / (2 C inflation)."""
    _positive(clip, "delta clip norm C")
    _positive(inflation, "rounding inflation")
    if dim < 1:
        raise SkellamError(f"dimension P {dim} must be >= 1")
    return math.sqrt(dim) / (2.0 * clip * inflation)


def skellam_rdp(order: int, mu: float, sens: Sensitivity) -> float:
    """The paper's RDP bound of the Skellam mechanism of variance `mu` at integer `order` > 1."""
    if int(order) != order or order < 2:
        raise SkellamError(f"the Skellam RDP bound holds at integer orders > 1, got {order}")
    _positive(mu, "Skellam variance mu")
    a, l2sq, l1 = float(order), sens.l2 * sens.l2, sens.l1
    return a * l2sq / (2.0 * mu) + min(
        ((2.0 * a - 1.0) * l2sq + 6.0 * l1) / (4.0 * mu * mu), 3.0 * l1 / (2.0 * mu)
    )


def skellam_rdp_curve(orders: Sequence[float], mu: float, sens: Sensitivity) -> np.ndarray:
    """The bound at every order (a fractional order uses ceil(order); orders must be > 1)."""
    if any(not o > 1 for o in orders):
        raise SkellamError("RDP orders must be > 1")
    return np.array([skellam_rdp(max(2, math.ceil(o)), mu, sens) for o in orders])


@dataclass(frozen=True)
class SkellamEvent:
    """`rounds` releases of the sum with Skellam noise of total variance `mu` (integer units)
    and record sensitivities `l2`, `l1`; `honest_sites`: the h the variance assumes."""

    mu: float
    l2: float
    l1: float
    rounds: int
    honest_sites: int

    def __post_init__(self) -> None:
        _positive(self.mu, "Skellam variance mu")
        _positive(self.l2, "L2 sensitivity")
        _positive(self.l1, "L1 sensitivity")
        if self.rounds < 0:
            raise SkellamError(f"rounds {self.rounds} must be >= 0")
        if self.honest_sites < 1:
            raise SkellamError(f"honest sites h {self.honest_sites} must be >= 1")

    @property
    def sensitivity(self) -> Sensitivity:
        return Sensitivity(l2=self.l2, l1=self.l1)

    def rdp(self, orders: Sequence[float]) -> np.ndarray:
        """RDP of all its rounds composed, at `orders`."""
        return self.rounds * skellam_rdp_curve(orders, self.mu, self.sensitivity)


def skellam_epsilon(mu: float, sens: Sensitivity, delta: float, rounds: int = 1) -> float:
    """(eps at delta) of `rounds` Skellam releases, by the accountant's conversion."""
    from components.privacy.accounting import rdp_epsilon

    return rdp_epsilon([SkellamEvent(mu, sens.l2, sens.l1, rounds, 1)], delta)


def mu_for(
    epsilon: float, delta: float, sens: Sensitivity, *, rounds: int = 1, rel_tol: float = 1e-6
) -> float:
    """The smallest total variance mu (to `rel_tol`, rounded up) whose `rounds` releases spend at
    most `epsilon` at `delta` (RDP, as the budgets are enforced); the calibration of
    `components.datasets.federated_stats.noise_multiplier_for`, for Skellam."""
    _positive(epsilon, "epsilon")
    low, high = 1e-9, sens.l2 * sens.l2
    while skellam_epsilon(high, sens, delta, rounds) > epsilon:
        low, high = high, high * 4.0
        if high > MU_SEARCH_MAX:
            raise SkellamError(
                f"no Skellam variance up to {MU_SEARCH_MAX:g} reaches epsilon {epsilon} at "
                f"delta {delta}: ask for a larger epsilon"
            )
    while high - low > rel_tol * high:
        mid = (low + high) / 2.0
        if skellam_epsilon(mid, sens, delta, rounds) > epsilon:
            low = mid
        else:
            high = mid
    return high


def site_share(mu: float, honest_sites: int) -> float:
    """The variance one site adds: mu / h (h honest shares sum to mu)."""
    _positive(mu, "Skellam variance mu")
    if honest_sites < 1:
        raise SkellamError(f"dp.min_honest_sites {honest_sites} must be >= 1")
    return mu / honest_sites


@dataclass(frozen=True)
class SkellamPlan:
    """Everything a distributed round needs, fixed before training: the scale `gamma`, the
    record sensitivity, the total variance `mu` calibrated to the epsilon, each site's share
    mu / h, and the ledger's event of one round."""

    clip: float
    gamma: float
    dim: int
    sensitivity: Sensitivity
    mu: float
    honest_sites: int

    @property
    def share(self) -> float:
        return site_share(self.mu, self.honest_sites)

    @property
    def round_event(self) -> SkellamEvent:
        s = self.sensitivity
        return SkellamEvent(self.mu, s.l2, s.l1, 1, self.honest_sites)


def plan_for(
    epsilon: float,
    delta: float,
    *,
    clip: float,
    dim: int,
    honest_sites: int,
    rounds: int = 1,
    inflation: float = DEFAULT_ROUNDING_INFLATION,
) -> SkellamPlan:
    """The plan whose `rounds` rounds spend at most `epsilon` at `delta`: gamma from the
    rounding inflation (`gamma_for`), mu from the calibration (`mu_for`); `rounds` 1 calibrates
    to a per-round epsilon (`dp.epsilon_per_round`), as the local mode fits its multiplier."""
    if honest_sites < 1:
        raise SkellamError(f"dp.min_honest_sites {honest_sites} must be >= 1")
    gamma = gamma_for(clip, dim, inflation)
    sens = record_sensitivity(clip, gamma, dim)
    mu = mu_for(epsilon, delta, sens, rounds=rounds)
    return SkellamPlan(clip, gamma, dim, sens, mu, honest_sites)


def round_plan(epsilon_per_round: float, delta: float, honest_sites: int, dim: int) -> SkellamPlan:
    """The pipeline's plan of one distributed round: delta clip `DISTRIBUTED_DELTA_CLIP`, mu
    calibrated to the policy's `dp.epsilon_per_round` at its `dp.delta`. Every site and the
    coordinator compute it from the same policy values (the compiler makes the members agree)
    and the model's size, so they agree on mu without exchanging it."""
    return plan_for(
        epsilon_per_round, delta, clip=DISTRIBUTED_DELTA_CLIP, dim=dim, honest_sites=honest_sites
    )


# ------------------------------------------------------------------ site vector


def clip_l2(vector: np.ndarray, clip: float) -> tuple[np.ndarray, float]:
    """`vector` scaled down to L2 norm <= `clip` (float64), and its norm before clipping."""
    _positive(clip, "delta clip norm C")
    x = np.asarray(vector, dtype=np.float64).ravel()
    if not np.isfinite(x).all():
        raise SkellamError("cannot clip a vector with NaN or infinite values")
    norm = float(np.linalg.norm(x))
    return (x * (clip / norm) if norm > clip else x), norm


def scale_round(clipped: np.ndarray, gamma: float) -> np.ndarray:
    """round(gamma * x) to the nearest integer (int64)."""
    _positive(gamma, "scale gamma")
    return np.rint(np.asarray(clipped, dtype=np.float64) * gamma).astype(np.int64)


def _poisson_small(lam: float, n: int, uniform: Uniform) -> np.ndarray:
    """Poisson(lam < 10) by multiplying uniforms until the product drops to exp(-lam) or below."""
    out = np.zeros(n, dtype=np.int64)
    prod = np.ones(n)
    active = np.arange(n)
    limit = math.exp(-lam)
    while active.size:
        prod[active] *= uniform(active.size)
        going = prod[active] > limit
        out[active[going]] += 1
        active = active[going]
    return out


def _poisson_ptrs(lam: float, n: int, uniform: Uniform) -> np.ndarray:
    """Poisson(lam >= 10) by Hoermann's PTRS (transformed rejection with squeeze, 1993)."""
    slam, loglam = math.sqrt(lam), math.log(lam)
    b = 0.931 + 2.53 * slam
    a = -0.059 + 0.02483 * b
    invalpha = 1.1239 + 1.1328 / (b - 3.4)
    vr = 0.9277 - 3.6224 / (b - 2.0)
    out = np.empty(n, dtype=np.int64)
    pending = np.arange(n)
    while pending.size:
        m = pending.size
        u = uniform(m) - 0.5
        v = uniform(m)
        us = 0.5 - np.abs(u)
        k = np.floor((2.0 * a / np.maximum(us, 1e-300) + b) * u + lam + 0.43)
        quick = (us >= 0.07) & (v <= vr)
        valid = (k >= 0) & ~((us < 0.013) & (v > us))
        kk = np.where(valid, k, 0.0)
        log_ratio = (
            np.log(np.maximum(v, 1e-300))
            + math.log(invalpha)
            - np.log(a / np.maximum(us * us, 1e-300) + b)
        )
        slow = valid & (log_ratio <= -lam + kk * loglam - gammaln(kk + 1.0))
        accept = quick | slow
        out[pending[accept]] = k[accept].astype(np.int64)
        pending = pending[~accept]
    return out


def poisson(lam: float, n: int, uniform: Uniform) -> np.ndarray:
    """n Poisson(lam) variates (int64) from `uniform`; lam = 0 gives zeros."""
    if not (math.isfinite(lam) and lam >= 0):
        raise SkellamError(f"Poisson mean {lam} must be a finite number >= 0")
    if lam == 0 or n == 0:
        return np.zeros(n, dtype=np.int64)
    return _poisson_small(lam, n, uniform) if lam < 10 else _poisson_ptrs(lam, n, uniform)


def skellam_noise(variance: float, n: int, uniform: Uniform) -> np.ndarray:
    """n Skellam variates of `variance`: Poisson(variance / 2) - Poisson(variance / 2)."""
    _positive(variance, "Skellam variance")
    return poisson(variance / 2.0, n, uniform) - poisson(variance / 2.0, n, uniform)


@dataclass(frozen=True)
class SiteVector:
    """One site's contribution: `values` = round(gamma clip(x)) + Skellam(mu / h) (int64), the
    delta's norm before clipping (stays at the site) and whether it was clipped."""

    values: np.ndarray
    norm: float
    clipped: bool


def site_vector(
    delta: np.ndarray, *, clip: float, gamma: float, share: float, uniform: Uniform
) -> SiteVector:
    """Clip, scale, round and noise one site's flattened model delta (module doc)."""
    clipped, norm = clip_l2(delta, clip)
    z = scale_round(clipped, gamma)
    return SiteVector(z + skellam_noise(share, z.size, uniform), norm, norm > clip)


# ------------------------------------------------------------------ words mod 2^w


def to_words(values: np.ndarray, modulus_bits: int) -> np.ndarray:
    """Signed integers as words mod 2^w (two's complement; w = 32 or 64): what SecAgg masks."""
    dtype = {32: np.uint32, 64: np.uint64}.get(modulus_bits)
    if dtype is None:
        raise SkellamError(f"modulus 2^{modulus_bits} unsupported: use 2^32 or 2^64")
    return np.asarray(values, dtype=np.int64).astype(np.uint64).astype(dtype)


def from_words(total: np.ndarray, modulus_bits: int) -> np.ndarray:
    """A sum of words mod 2^w back to signed integers (centred: [-2^(w-1), 2^(w-1)))."""
    words = np.asarray(total).astype(np.uint64)
    if modulus_bits == 64:
        return words.view(np.int64).copy()
    if modulus_bits != 32:
        raise SkellamError(f"modulus 2^{modulus_bits} unsupported: use 2^32 or 2^64")
    signed = words.astype(np.int64)
    return np.where(signed >= 2**31, signed - 2**32, signed)


def sum_bound(
    num_sites: int, clip: float, gamma: float, dim: int, mu: float, tail_sigmas: float = 20.0
) -> float:
    """A bound on any coordinate of the sum: n (gamma C + 1/2) plus `tail_sigmas` standard
    deviations of noise of variance n mu (at most n shares of mu each, the worst case h = 1).
    The sum is decoded exactly when this stays below 2^(w-1)."""
    return num_sites * (gamma * clip + 0.5) + tail_sigmas * math.sqrt(num_sites * mu)


def check_modulus(bound: float, modulus_bits: int) -> None:
    """SkellamError when a sum bounded by `bound` could wrap mod 2^w."""
    if not bound < 2.0 ** (modulus_bits - 1):
        raise SkellamError(
            f"the noisy sum can reach {bound:.3g}, beyond 2^{modulus_bits - 1}: it would wrap mod "
            f"2^{modulus_bits}; use a 64-bit modulus or a smaller scale gamma"
        )


def decode_sum(total: np.ndarray, gamma: float) -> np.ndarray:
    """The float sum of the clipped deltas (plus noise / gamma) from the signed integer sum."""
    _positive(gamma, "scale gamma")
    return np.asarray(total, dtype=np.float64) / gamma


# ------------------------------------------------------------------ SecAgg encoding


def encode_distributed(
    update: np.ndarray, plan: SkellamPlan, uniform: Uniform, modulus_bits: int
) -> tuple[np.ndarray, SiteVector]:
    """The words a site masks under distributed DP: [round(gamma clip(update)) + Skellam(mu/h),
    1] mod 2^w (the last slot counts contributions; weights are uniform, a sample-count weight
    would scale the sensitivity). Also returns the site vector (its norm stays at the site)."""
    if np.asarray(update).size != plan.dim:
        raise SkellamError(
            f"the update has {np.asarray(update).size} values, the plan was made for {plan.dim}"
        )
    vec = site_vector(update, clip=plan.clip, gamma=plan.gamma, share=plan.share, uniform=uniform)
    return to_words(np.concatenate([vec.values, [1]]), modulus_bits), vec


def decode_distributed(
    total: np.ndarray, count: int, plan: SkellamPlan, modulus_bits: int, num_sites: int
) -> np.ndarray:
    """The mean clipped delta (plus the sum's noise / (gamma count)) from the unmasked sum of
    `count` encodings mod 2^w. SkellamError when the sum could have wrapped for `num_sites`
    sites, or when its count slot is not `count` (the sum is not of those sites' vectors)."""
    check_modulus(
        sum_bound(num_sites, plan.clip, plan.gamma, plan.dim, plan.share * num_sites),
        modulus_bits,
    )
    if count < plan.honest_sites:
        raise SkellamError(
            f"the sum holds {count} site(s), fewer than dp.min_honest_sites "
            f"{plan.honest_sites}: it carries less noise than accounted and is not released"
        )
    signed = from_words(total, modulus_bits)
    if signed.size != plan.dim + 1 or int(signed[-1]) != count:
        raise SkellamError(
            f"the unmasked sum counts {int(signed[-1]) if signed.size else 0} contribution(s) "
            f"over {signed.size - 1} values, expected {count} over {plan.dim}"
        )
    return decode_sum(signed[:-1], plan.gamma) / count
