"""Unmasking: the coordinator's signed request, the sites' answers, the sum (pure).

The coordinator names the survivors (masked vector received) and the dropped sites (shared
their secrets, no masked vector). A holder answers with its self-mask share of each survivor
and its key share of each dropped site it holds shares of — and refuses a request that puts a
site in both lists, lists the holder itself as dropped, has fewer than t survivors, or
contradicts an answer it already gave this round (which could hand out both kinds of share of
one site across two requests). The coordinator then needs t shares per site: with fewer the
round fails, naming the site and the count.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from components.secagg.errors import SecAggError
from components.secagg.graph import Roster
from components.secagg.keys import Advertisement, public_bytes, seed_commitment, sign
from components.secagg.masking import add_signed, pair_sign, pairwise_seed
from components.secagg.prg import mask
from components.secagg.shamir import Share, combine

REQUEST_KIND = "fedpipe.dev/secagg/unmask-request/v1"


@dataclass(frozen=True)
class UnmaskRequest:
    run_id: str
    round: int
    survivors: tuple[str, ...]
    dropped: tuple[str, ...]
    signature: bytes = b""

    def body(self) -> dict:
        return {
            "kind": REQUEST_KIND,
            "run_id": self.run_id,
            "round": self.round,
            "survivors": sorted(self.survivors),
            "dropped": sorted(self.dropped),
        }


def make_request(roster: Roster, survivors: Sequence[str], key: Ed25519PrivateKey) -> UnmaskRequest:
    """The signed request: `survivors` delivered, every other roster site dropped (the
    excluded ones are neither: no one masked with them, no one holds their shares)."""
    unknown = set(survivors) - set(roster.members)
    if unknown:
        raise SecAggError(f"survivors {sorted(unknown)} are not in the roster's members")
    dropped = tuple(s for s in roster.members if s not in set(survivors))
    unsigned = UnmaskRequest(roster.run_id, roster.round, tuple(sorted(survivors)), dropped)
    return UnmaskRequest(**{**unsigned.__dict__, "signature": sign(unsigned.body(), key)})


@dataclass(frozen=True)
class UnmaskResponse:
    """One holder's answer: {survivor: self-mask share}, {dropped site: key share}."""

    run_id: str
    round: int
    holder: str
    self_mask: dict[str, Share] = field(default_factory=dict)
    mask_key: dict[str, Share] = field(default_factory=dict)


def _collect(
    roster: Roster, responses: Sequence[UnmaskResponse], kind: str, owner: str
) -> list[Share]:
    holders = set(roster.holders(owner))
    found = {}
    for r in responses:
        if (r.run_id, r.round) != (roster.run_id, roster.round) or r.holder not in holders:
            continue
        share = getattr(r, kind).get(owner)
        if share is not None and share.x == roster.index(r.holder):
            found[r.holder] = share
    return [found[h] for h in sorted(found)]


def unmask_sum(
    roster: Roster,
    advertisements: Mapping[str, Advertisement],
    masked: Mapping[str, np.ndarray],
    responses: Sequence[UnmaskResponse],
    modulus_bits: int,
) -> np.ndarray:
    """The sum mod 2^w of the survivors' quantized vectors (survivors = keys of `masked`).

    SecAggError (the round fails) when a site's secret has fewer than t shares among the
    responses, or a reconstructed masking key does not match its advertised public key."""
    if not masked:
        raise SecAggError(f"round {roster.round}: no masked vector arrived; nothing to unmask")
    total = np.zeros_like(next(iter(masked.values())))
    for vector in masked.values():
        total = total + vector
    return remove_masks(total, sorted(masked), roster, advertisements, responses, modulus_bits)


def remove_masks(
    total: np.ndarray,
    survivors: Sequence[str],
    roster: Roster,
    advertisements: Mapping[str, Advertisement],
    responses: Sequence[UnmaskResponse],
    modulus_bits: int,
) -> np.ndarray:
    """`unmask_sum` for a coordinator that summed the masked vectors of `survivors` as they
    arrived (`total`, mod 2^w): the same checks and failures."""
    survivors = sorted(survivors)
    if not survivors:
        raise SecAggError(f"round {roster.round}: no masked vector arrived; nothing to unmask")
    alive = set(survivors)
    excluded = sorted(alive & set(roster.excluded))
    if excluded:
        raise SecAggError(
            f"round {roster.round}: site(s) {', '.join(excluded)} were excluded at relay; "
            "their vectors cannot be in the sum"
        )
    dropped = [s for s in roster.members if s not in alive]
    t = roster.threshold
    n = total.shape[0]
    total = np.array(total, copy=True)  # the caller's sum stays as it was
    for site in survivors:
        shares = _collect(roster, responses, "self_mask", site)
        if len(shares) < t:
            raise SecAggError(
                f"round {roster.round}: site {site}'s self mask needs t = {t} shares, only "
                f"{len(shares)} of its holders answered; the round fails"
            )
        seed = combine(shares, t)
        if seed_commitment(roster.run_id, roster.round, site, seed) != (
            advertisements[site].seed_commitment
        ):
            raise SecAggError(
                f"round {roster.round}: shares of site {site}'s self-mask seed do not match "
                "its signed commitment (a holder sent a wrong share); the round fails"
            )
        np.subtract(total, mask(seed, n, modulus_bits), out=total)
    for gone in dropped:
        shares = _collect(roster, responses, "mask_key", gone)
        if len(shares) < t:
            raise SecAggError(
                f"round {roster.round}: dropped site {gone}'s masking key needs t = {t} shares, "
                f"only {len(shares)} of its holders answered; the round fails"
            )
        key = X25519PrivateKey.from_private_bytes(combine(shares, t))
        if public_bytes(key.public_key()) != advertisements[gone].s_public:
            raise SecAggError(
                f"round {roster.round}: shares of site {gone}'s masking key do not reconstruct "
                "its advertised key (a holder sent a wrong share); the round fails"
            )
        for v in roster.neighbours[gone]:
            if v in alive:  # v added pair_sign(v, gone) * PRG(s_v,gone): take it out
                seed = pairwise_seed(
                    key, advertisements[v].s_key, roster.run_id, roster.round, v, gone
                )
                total = add_signed(total, mask(seed, n, modulus_bits), -pair_sign(v, gone))
    return total
