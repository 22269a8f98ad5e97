"""Server optimizers applied to the aggregated update Δ (Reddi et al. 2020, "Adaptive
Federated Optimization", Algorithm 2).

Pure and stateless objects: the state is a dict of named float32 arrays that the coordinator
persists between rounds (`optimizer.npz`); `apply` returns new params and a new state and
never mutates its inputs. Δ is the aggregated client change (client − global), so a step
moves *along* Δ: the pseudo-gradient is −Δ.

* `fedavg`  (learning_rate η=1):          x ← x + η·Δ
* `fedavgm` (η=1, momentum β=0.9):         v ← β·v + Δ;  x ← x + η·v
* `fedadam` (η=0.01, β₁=0.9, β₂=0.99, τ=1e-3):
      m ← β₁·m + (1−β₁)·Δ;  v ← β₂·v + (1−β₂)·Δ²;  x ← x + η·m / (√v + τ)
* `fedyogi` (same defaults):
      m as Adam;  v ← v − (1−β₂)·Δ²·sign(v − Δ²);  x ← x + η·m / (√v + τ)

v starts at τ² (the paper's v₋₁ ≥ τ²) unless `initial_v` is given. `bias_correction=True`
scales η by √(1−β₂ᵗ)/(1−β₁ᵗ) at step t, which is exactly TensorFlow Federated's
`build_adam` / `build_yogi` (with `initial_v` 0 for Adam, 1e-6 for Yogi, τ = their epsilon).
State keys: `step` (scalar), `m/<name>`, `v/<name>`, `momentum/<name>`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from components.common.tensors import Tensors


class OptimizerStateError(ValueError):
    """Params, delta and state that do not belong together, or bad hyper-parameters."""


class ServerOptimizer(Protocol):
    """A server optimizer with explicit state (named float32 tensors)."""

    def init_state(self, params: Mapping[str, np.ndarray]) -> Tensors:
        """The state before round 1 for a model with `params`."""
        ...

    def apply(
        self,
        params: Mapping[str, np.ndarray],
        delta: Mapping[str, np.ndarray],
        state: Mapping[str, np.ndarray],
    ) -> tuple[Tensors, Tensors]:
        """(new params, new state) after one server step along the aggregated `delta`."""
        ...


def _check(params: Mapping[str, np.ndarray], delta: Mapping[str, np.ndarray]) -> None:
    if set(params) != set(delta):
        raise OptimizerStateError(
            f"delta tensors {sorted(delta)} do not match the model's {sorted(params)}"
        )
    for name, value in params.items():
        if np.shape(delta[name]) != np.shape(value):
            raise OptimizerStateError(
                f"delta {name!r} has shape {np.shape(delta[name])}, model has {np.shape(value)}"
            )


def _slots(
    state: Mapping[str, np.ndarray], prefix: str, params: Mapping[str, np.ndarray]
) -> Tensors:
    """The state tensors `prefix/<name>` of every param; refuses missing or misshaped ones."""
    out = {}
    for name, value in params.items():
        key = f"{prefix}/{name}"
        if key not in state:
            raise OptimizerStateError(
                f"optimizer state lacks {key!r}: it was initialised for another model or "
                f"another optimizer (state keys: {sorted(state)[:6]}...)"
            )
        if np.shape(state[key]) != np.shape(value):
            raise OptimizerStateError(
                f"optimizer state {key!r} has shape {np.shape(state[key])}, "
                f"model has {np.shape(value)}"
            )
        out[name] = np.asarray(state[key], dtype=np.float32)
    return out


def _f32(x: np.ndarray) -> np.ndarray:
    return np.asarray(x, dtype=np.float32)


def _positive(name: str, value: float) -> None:
    if not (np.isfinite(value) and value >= 0):
        raise OptimizerStateError(f"{name} must be a finite number ≥ 0, got {value}")


def _unit(name: str, value: float) -> None:
    if not 0.0 <= value < 1.0:
        raise OptimizerStateError(f"{name} must be in [0, 1), got {value}")


@dataclass(frozen=True)
class FedAvgStep:
    """x ← x + η·Δ (η = 1: the new model is the aggregate)."""

    learning_rate: float = 1.0

    def __post_init__(self) -> None:
        _positive("learning_rate", self.learning_rate)

    def init_state(self, params: Mapping[str, np.ndarray]) -> Tensors:
        return {}

    def apply(
        self,
        params: Mapping[str, np.ndarray],
        delta: Mapping[str, np.ndarray],
        state: Mapping[str, np.ndarray],
    ) -> tuple[Tensors, Tensors]:
        _check(params, delta)
        lr = np.float32(self.learning_rate)
        return {n: _f32(params[n]) + lr * _f32(delta[n]) for n in params}, {}


@dataclass(frozen=True)
class FedAvgM:
    """Server momentum: v ← β·v + Δ; x ← x + η·v."""

    learning_rate: float = 1.0
    momentum: float = 0.9

    def __post_init__(self) -> None:
        _positive("learning_rate", self.learning_rate)
        _unit("momentum", self.momentum)

    def init_state(self, params: Mapping[str, np.ndarray]) -> Tensors:
        return {f"momentum/{n}": np.zeros(np.shape(p), np.float32) for n, p in params.items()}

    def apply(
        self,
        params: Mapping[str, np.ndarray],
        delta: Mapping[str, np.ndarray],
        state: Mapping[str, np.ndarray],
    ) -> tuple[Tensors, Tensors]:
        _check(params, delta)
        v = _slots(state, "momentum", params)
        lr, beta = np.float32(self.learning_rate), np.float32(self.momentum)
        new_params, new_state = {}, {}
        for n in params:
            vn = beta * v[n] + _f32(delta[n])
            new_params[n] = _f32(params[n]) + lr * vn
            new_state[f"momentum/{n}"] = vn
        return new_params, new_state


@dataclass(frozen=True)
class _Adaptive:
    """Shared first/second-moment machinery of FedAdam and FedYogi."""

    learning_rate: float = 0.01
    beta_1: float = 0.9
    beta_2: float = 0.99
    tau: float = 1e-3
    bias_correction: bool = False
    initial_v: float | None = None

    def __post_init__(self) -> None:
        _positive("learning_rate", self.learning_rate)
        _unit("beta_1", self.beta_1)
        _unit("beta_2", self.beta_2)
        _positive("tau", self.tau)
        if self.initial_v is not None:
            _positive("initial_v", self.initial_v)

    def _second_moment(self, v: np.ndarray, d2: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def init_state(self, params: Mapping[str, np.ndarray]) -> Tensors:
        v0 = self.tau**2 if self.initial_v is None else self.initial_v
        state: Tensors = {"step": np.zeros((), np.float32)}
        for n, p in params.items():
            state[f"m/{n}"] = np.zeros(np.shape(p), np.float32)
            state[f"v/{n}"] = np.full(np.shape(p), v0, np.float32)
        return state

    def apply(
        self,
        params: Mapping[str, np.ndarray],
        delta: Mapping[str, np.ndarray],
        state: Mapping[str, np.ndarray],
    ) -> tuple[Tensors, Tensors]:
        _check(params, delta)
        m, v = _slots(state, "m", params), _slots(state, "v", params)
        if "step" not in state:
            raise OptimizerStateError("optimizer state lacks 'step' (not an adaptive state)")
        step = float(state["step"]) + 1.0
        b1 = np.float32(self.beta_1)
        lr = self.learning_rate
        if self.bias_correction:
            lr = lr * np.sqrt(1.0 - self.beta_2**step) / (1.0 - self.beta_1**step)
        lr32, tau = np.float32(lr), np.float32(self.tau)
        new_params: Tensors = {}
        new_state: Tensors = {"step": np.asarray(step, np.float32)}
        for n in params:
            d = _f32(delta[n])
            mn = m[n] + (d - m[n]) * (np.float32(1) - b1)
            vn = self._second_moment(v[n], d * d)
            new_params[n] = _f32(params[n]) + lr32 * mn / (np.sqrt(vn) + tau)
            new_state[f"m/{n}"], new_state[f"v/{n}"] = mn, vn
        return new_params, new_state


@dataclass(frozen=True)
class FedAdam(_Adaptive):
    """Adam on the server: v ← β₂·v + (1−β₂)·Δ²."""

    def _second_moment(self, v: np.ndarray, d2: np.ndarray) -> np.ndarray:
        return v + (d2 - v) * (np.float32(1) - np.float32(self.beta_2))


@dataclass(frozen=True)
class FedYogi(_Adaptive):
    """Yogi on the server: v ← v − (1−β₂)·Δ²·sign(v − Δ²) (additive, never explodes)."""

    def _second_moment(self, v: np.ndarray, d2: np.ndarray) -> np.ndarray:
        return v + (np.float32(1) - np.float32(self.beta_2)) * np.sign(d2 - v) * d2


OPTIMIZERS: dict[str, type] = {
    "fedavg": FedAvgStep,
    "fedavgm": FedAvgM,
    "fedadam": FedAdam,
    "fedyogi": FedYogi,
}


def build_server_optimizer(name: str, learning_rate: float, **params: float) -> ServerOptimizer:
    """The optimizer `name` (fedavg, fedavgm, fedadam, fedyogi) with η = `learning_rate` and
    its other hyper-parameters from `params` (e.g. momentum, beta_1, beta_2, tau)."""
    if name not in OPTIMIZERS:
        raise OptimizerStateError(
            f"unknown server optimizer {name!r}; choose from {sorted(OPTIMIZERS)}"
        )
    cls = OPTIMIZERS[name]
    fields = set(cls.__dataclass_fields__) - {"learning_rate"}
    unknown = sorted(set(params) - fields)
    if unknown:
        raise OptimizerStateError(
            f"{name}: unknown parameter(s) {unknown}; accepted: {sorted(fields) or 'none'}"
        )
    return cls(learning_rate=learning_rate, **params)
