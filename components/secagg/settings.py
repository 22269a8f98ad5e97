"""The SecAgg+ settings of a compiled federation and the flat vector a site masks (pure).

The compiler fixes one `SecAggSettings` per pipeline (a constant `secagg_json` of every
SecAgg+ task), so every site quantizes with the same fixed point and the coordinator
dequantizes with it:

* `num_sites`: the federation's member sites; the quantizer keeps the sum of that many
  vectors below 2^modulus_bits, whoever drops;
* `neighbours`: the largest neighbour count k of the graph (even; Bell et al. 2020). A round
  with m advertising sites uses k = m - 1 (complete graph, Bonawitz et al. 2017) when
  m - 1 <= neighbours, else k = neighbours; its threshold is t = floor((k + 1) / 2) + 1, the
  smallest that keeps both shares of a site out of a lying coordinator's reach;
* `threshold`: None (the smallest safe t above) or the policy's t for the full graph; a
  round with k neighbours uses max(floor((k + 1) / 2) + 1, min(threshold, k + 1)) (the
  site and its k neighbours hold its shares; a dropped site's k neighbours must reach t);
* `modulus_bits`: the word size (policy `aggregation.secagg.word_bits`); the fixed point must
  keep at least `MIN_FIXED_POINT_BITS` bits per value for the sum over `num_sites`;
* `norm_bound`: each site clips its update to this L2 norm before masking (the coordinator
  cannot bound what it cannot see);
* `weighting`: `uniform` (weight 1 per site; what plain FedAvg does when the sample counts
  are hidden) or `num_examples` (the site's training rows, capped by `max_weight`): the weight
  rides in the last slot of the masked vector, so the coordinator learns only the total.

The masked vector of a site is [weight * clip(delta), weight] with delta flattened in the
sorted order of the tensor names (`flatten` / `unflatten`).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass

import numpy as np

from components.secagg.encode import weighted_quantizer
from components.secagg.errors import SecAggError
from components.secagg.quantize import Quantizer, max_bits

WEIGHTINGS = ("uniform", "num_examples")
DEFAULT_NEIGHBOURS = 8
DEFAULT_MODULUS_BITS = 64
DEFAULT_NORM_BOUND = 100.0
MIN_FIXED_POINT_BITS = 16  # fewer levels per value and the quantization error swamps the update


@dataclass(frozen=True)
class SecAggSettings:
    num_sites: int
    neighbours: int = DEFAULT_NEIGHBOURS
    modulus_bits: int = DEFAULT_MODULUS_BITS
    norm_bound: float = DEFAULT_NORM_BOUND
    weighting: str = "uniform"
    max_weight: float = 1.0
    threshold: int | None = None

    def __post_init__(self) -> None:
        if self.num_sites < 2:
            raise SecAggError(f"secure aggregation needs at least 2 sites, got {self.num_sites}")
        if self.neighbours < 2 or self.neighbours % 2:
            raise SecAggError(f"neighbours {self.neighbours} must be even and >= 2")
        if self.modulus_bits not in (32, 64):
            raise SecAggError(f"modulus_bits {self.modulus_bits} must be 32 or 64")
        for _field, problem in parameter_problems(
            self.num_sites, self.neighbours, self.threshold, self.modulus_bits
        ):
            raise SecAggError(problem)
        if not (self.norm_bound > 0 and math.isfinite(self.norm_bound)):
            raise SecAggError(f"norm_bound {self.norm_bound} must be a finite number > 0")
        if self.weighting not in WEIGHTINGS:
            raise SecAggError(f"weighting {self.weighting!r} must be one of {WEIGHTINGS}")
        if not (self.max_weight >= 1 and math.isfinite(self.max_weight)):
            raise SecAggError(f"max_weight {self.max_weight} must be a finite number >= 1")
        if self.weighting == "uniform" and self.max_weight != 1:
            raise SecAggError("uniform weighting has max_weight 1")

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True, separators=(",", ":"))

    @staticmethod
    def from_json(text: str, where: str = "secagg_json") -> SecAggSettings:
        try:
            body = json.loads(text)
            return SecAggSettings(
                num_sites=int(body["num_sites"]),
                neighbours=int(body["neighbours"]),
                modulus_bits=int(body["modulus_bits"]),
                norm_bound=float(body["norm_bound"]),
                weighting=str(body["weighting"]),
                max_weight=float(body["max_weight"]),
                threshold=None if body.get("threshold") is None else int(body["threshold"]),
            )
        except (KeyError, ValueError, TypeError) as exc:
            raise SecAggError(f"{where}: not SecAgg+ settings ({exc})") from None

    def graph(self, advertised: int) -> tuple[int, int]:
        """(k neighbours, threshold t) of a round with `advertised` sites in its roster."""
        if advertised < 2:
            raise SecAggError(
                f"{advertised} site(s) advertised keys: secure aggregation needs at least 2"
            )
        k = advertised - 1 if advertised - 1 <= self.neighbours else self.neighbours
        smallest = (k + 1) // 2 + 1
        if self.threshold is None:
            return k, smallest
        return k, max(smallest, min(self.threshold, k + 1))

    def quantizer(self) -> Quantizer:
        return weighted_quantizer(
            self.num_sites, self.norm_bound, self.max_weight, self.modulus_bits
        )

    def weight(self, num_examples: int | None, site_id: str) -> float:
        """The FedAvg weight a site masks: 1, or its row count (capped at max_weight)."""
        if self.weighting == "uniform":
            return 1.0
        if not num_examples or num_examples < 1:
            raise SecAggError(f"site {site_id}: num_examples weighting without a row count")
        return float(min(num_examples, self.max_weight))


def parameter_problems(
    num_sites: int, neighbours: int, threshold: int | None, modulus_bits: int
) -> list[tuple[str, str]]:
    """(policy field, problem) for every impossible combination of the SecAgg+ parameters
    with `num_sites` member sites: a threshold a lying coordinator could exploit or no round
    could reach (`threshold`), a word too small for the sum (`word_bits`)."""
    problems: list[tuple[str, str]] = []
    if threshold is not None:
        k = min(num_sites - 1, neighbours)
        if 2 * threshold <= k + 1:
            problems.append(
                (
                    "threshold",
                    f"threshold {threshold} must exceed (k + 1) / 2 = {(k + 1) / 2:g} (k = {k} "
                    f"neighbours with {num_sites} sites): else a coordinator that lies about who "
                    "dropped could collect both shares of one site",
                )
            )
        elif threshold > k + 1:
            problems.append(
                (
                    "threshold",
                    f"threshold {threshold} exceeds the k + 1 = {k + 1} holders of a site's shares "
                    f"(itself and k = {k} neighbours with {num_sites} sites): no site's masks "
                    "could ever be recovered",
                )
            )
    if modulus_bits in (32, 64):
        bits = max_bits(num_sites, modulus_bits)
        if bits < MIN_FIXED_POINT_BITS:
            problems.append(
                (
                    "word_bits",
                    f"{modulus_bits}-bit words: the sum of {num_sites} sites leaves {bits} bits "
                    f"per value (fewer than {MIN_FIXED_POINT_BITS}) before it would overflow; use "
                    "64-bit words",
                )
            )
    return problems


def flatten(tensors: Mapping[str, np.ndarray]) -> np.ndarray:
    """The float64 vector of `tensors` in sorted name order."""
    if not tensors:
        return np.zeros(0)
    return np.concatenate(
        [np.asarray(tensors[n], dtype=np.float64).ravel() for n in sorted(tensors)]
    )


def vector_length(template: Mapping[str, np.ndarray]) -> int:
    """The masked vector's length for a model shaped like `template` (+1: the weight)."""
    return int(sum(np.asarray(a).size for a in template.values())) + 1


def unflatten(vector: np.ndarray, template: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """`flatten`'s inverse for tensors shaped like `template` (float32, as models are)."""
    out, offset = {}, 0
    for name in sorted(template):
        shape = np.asarray(template[name]).shape
        size = int(np.prod(shape, dtype=np.int64))
        out[name] = np.asarray(vector[offset : offset + size], dtype=np.float32).reshape(shape)
        offset += size
    if offset != len(vector):
        raise SecAggError(f"vector of {len(vector)} values, the model has {offset}")
    return out
