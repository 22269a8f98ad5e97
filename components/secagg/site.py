"""One site's side of a SecAgg+ round (pure, in memory; the stage keeps it in the site's
bucket between steps): keys, shares, masking, answering the unmasking request."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from components.secagg.errors import RefusedRequest, SecAggError
from components.secagg.graph import Roster, verify_roster
from components.secagg.keys import (
    Advertisement,
    new_round_keys,
    private_bytes,
    signed_bytes,
    verify,
    verify_advertisement,
)
from components.secagg.masking import masked_vector, pairwise_seed
from components.secagg.rand import RandomBytes, os_random
from components.secagg.shamir import split
from components.secagg.shares import EncryptedShare, SharePair, decrypt_share, encrypt_share
from components.secagg.unmask import UnmaskRequest, UnmaskResponse


class SiteSession:
    """Site `site_id`'s round: advertise → accept roster → share → mask → respond."""

    def __init__(
        self,
        run_id: str,
        round_: int,
        site_id: str,
        site_key: Ed25519PrivateKey,
        rand: RandomBytes = os_random,
    ) -> None:
        self.run_id, self.round, self.site_id, self._rand = run_id, round_, site_id, rand
        self._self_seed = rand(32)
        self._keys, self.advertisement = new_round_keys(
            run_id, round_, site_id, site_key, self._self_seed, rand
        )
        self.roster: Roster | None = None
        self._ads: dict[str, Advertisement] = {}
        self._held: dict[str, SharePair] = {}
        self._revealed: dict[str, str] = {}  # owner -> "self_mask" | "mask_key" already given

    def state(self) -> bytes:
        """The round state to keep in the site's own bucket between steps (private keys,
        self-mask seed, shares held, shares revealed); never leaves the site."""
        from components.secagg.wire import state_body

        body = state_body(
            self._keys, self._self_seed, self.advertisement, self._held, self._revealed
        )
        return signed_bytes(body)

    @classmethod
    def restore(
        cls,
        data: bytes,
        run_id: str,
        round_: int,
        site_id: str,
        rand: RandomBytes = os_random,
    ) -> SiteSession:
        """The session `state()` wrote, for (run, round, site) only; the roster must be
        accepted again (`accept_roster` re-verifies it and the advertisements)."""
        from components.secagg.wire import parse_state

        keys, seed, ad, held, revealed = parse_state(data, f"site {site_id} state")
        if (ad.run_id, ad.round, ad.site_id) != (run_id, round_, site_id):
            raise SecAggError(
                f"site {site_id}: stored state is for site {ad.site_id} run {ad.run_id} "
                f"round {ad.round}, not run {run_id} round {round_}"
            )
        session = cls.__new__(cls)
        session.run_id, session.round, session.site_id, session._rand = (
            run_id,
            round_,
            site_id,
            rand,
        )
        session._keys, session.advertisement, session._self_seed = keys, ad, seed
        session.roster, session._ads = None, {}
        session._held, session._revealed = held, revealed
        return session

    def _where(self) -> str:
        return f"site {self.site_id} (run {self.run_id}, round {self.round})"

    def accept_roster(
        self,
        roster: Roster,
        coordinator_public: Ed25519PublicKey,
        advertisements: Mapping[str, Advertisement],
        site_keys: Mapping[str, Ed25519PublicKey],
    ) -> None:
        """Verify the roster and every neighbour's advertisement (signed by its site key and
        pinned by the roster) before trusting any key."""
        verify_roster(roster, self.run_id, self.round, coordinator_public, self.advertisement)
        for peer in roster.neighbours[self.site_id]:
            ad = advertisements.get(peer)
            if ad is None or peer not in site_keys:
                raise SecAggError(f"{self._where()}: no advertisement or site key of {peer}")
            verify_advertisement(ad, self.run_id, self.round, peer, site_keys[peer])
            if ad.digest() != roster.advertisements[peer]:
                raise SecAggError(
                    f"{self._where()}: site {peer}'s advertisement is not the one the roster pins"
                )
            self._ads[peer] = ad
        self._ads[self.site_id] = self.advertisement
        self.roster = roster

    def _roster(self) -> Roster:
        if self.roster is None:
            raise SecAggError(f"{self._where()}: no roster accepted yet")
        return self.roster

    def make_shares(self) -> list[EncryptedShare]:
        """Shares of the self-mask seed and the masking key, one encrypted pair per holder
        (its neighbours and itself: the own pair is kept, not sent)."""
        roster = self._roster()
        holders = roster.holders(self.site_id)
        xs = [roster.index(h) for h in holders]
        t = roster.threshold
        b_shares = split(self._self_seed, xs, t, self._rand)
        s_shares = split(private_bytes(self._keys.s), xs, t, self._rand)
        out = []
        for holder, b, s in zip(holders, b_shares, s_shares, strict=True):
            pair = SharePair(self.site_id, b, s)
            if holder == self.site_id:
                self._held[self.site_id] = pair
                continue
            out.append(
                encrypt_share(
                    pair,
                    self.run_id,
                    self.round,
                    holder,
                    self._keys.c,
                    self._ads[holder].c_key,
                    self._rand,
                )
            )
        return out

    def receive_shares(self, shares: Sequence[EncryptedShare]) -> None:
        """Decrypt and keep the shares addressed to this site; refuse anything else."""
        roster = self._roster()
        for share in shares:
            if (
                share.receiver != self.site_id
                or share.sender not in roster.neighbours[self.site_id]
            ):
                raise SecAggError(
                    f"{self._where()}: share from {share.sender} to {share.receiver} is not "
                    "for this site from a neighbour; refused"
                )
            pair = decrypt_share(
                share,
                self.run_id,
                self.round,
                self.site_id,
                self._keys.c,
                self._ads[share.sender].c_key,
            )
            if pair.self_mask.x != roster.index(self.site_id):
                raise SecAggError(f"{self._where()}: share from {share.sender} has another x")
            self._held[share.sender] = pair

    def mask(self, quantized: np.ndarray, modulus_bits: int) -> np.ndarray:
        """The masked vector to export (quantized words of the modulus' dtype): pairwise
        masks with every neighbour still in the round (none with an excluded one); refused
        when fewer than t holders of this site's shares remain (itself and those)."""
        roster = self._roster()
        if self.site_id in roster.excluded:
            raise SecAggError(f"{self._where()}: this site was excluded from the round")
        live = roster.live_neighbours(self.site_id)
        if 1 + len(live) < roster.threshold:
            raise SecAggError(
                f"{self._where()}: {1 + len(live)} live holder(s) of this site's shares "
                f"(itself and {', '.join(live) or 'no neighbour'}) < threshold "
                f"{roster.threshold}; not masking"
            )
        seeds = {
            v: pairwise_seed(
                self._keys.s, self._ads[v].s_key, self.run_id, self.round, self.site_id, v
            )
            for v in live
        }
        return masked_vector(quantized, self._self_seed, seeds, self.site_id, modulus_bits)

    def respond(
        self, request: UnmaskRequest, coordinator_public: Ed25519PublicKey
    ) -> UnmaskResponse:
        """Self-mask shares of survivors, key shares of dropped sites, never both for one
        site across every request of the round; RefusedRequest (naming why) otherwise."""
        roster, where = self._roster(), self._where()
        verify(request.body(), request.signature, coordinator_public, f"{where}: unmask request")
        if (request.run_id, request.round) != (self.run_id, self.round):
            raise RefusedRequest(
                f"{where}: unmask request is for run {request.run_id} round {request.round}"
            )
        both = sorted(set(request.survivors) & set(request.dropped))
        if both:
            raise RefusedRequest(
                f"{where}: the request asks for both the self-mask and the masking-key shares "
                f"of site(s) {', '.join(both)}; refused (that would unmask their update)"
            )
        if self.site_id in request.dropped:
            raise RefusedRequest(f"{where}: the request lists this live site as dropped")
        if len(request.survivors) < roster.threshold:
            raise RefusedRequest(
                f"{where}: {len(request.survivors)} survivors < threshold {roster.threshold}"
            )
        wanted = {s: "self_mask" for s in request.survivors}
        wanted.update({s: "mask_key" for s in request.dropped})
        conflict = sorted(
            s
            for s, kind in wanted.items()
            if self._revealed.get(s, kind) != kind and s in self._held
        )
        if conflict:
            raise RefusedRequest(
                f"{where}: already gave the other share of site(s) {', '.join(conflict)} this "
                "round; refused (both shares of one site are never given)"
            )
        response = UnmaskResponse(self.run_id, self.round, self.site_id)
        for owner, kind in wanted.items():
            pair = self._held.get(owner)
            if pair is None:
                continue
            getattr(response, kind)[owner] = getattr(pair, kind)
            self._revealed[owner] = kind
        return response
