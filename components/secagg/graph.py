"""The coordinator's signed roster: who takes part, their advertisements, the neighbour graph
and the threshold (pure).

Graph (Bell et al. 2020): a k-regular Harary graph on a random ring order — each site is
joined to the k/2 sites before and after it — so each site's secrets are shared among its k
neighbours and itself (k + 1 holders). With k >= n - 1 the graph is complete (Bonawitz et
al. 2017). The threshold t must satisfy (k + 1) / 2 < t <= k + 1: a coordinator that tells
different holders different stories can then never collect t self-mask shares *and* t key
shares of one site, because an honest holder gives only one kind per site.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from components.secagg.errors import SecAggError
from components.secagg.keys import Advertisement, sign, verify, verify_advertisement
from components.secagg.rand import RandomBytes

ROSTER_KIND = "fedpipe.dev/secagg/roster/v1"
EXCLUSION_KIND = "fedpipe.dev/secagg/exclusion/v1"


def ring_order(sites: list[str], rand: RandomBytes) -> list[str]:
    """A uniformly random order of `sites` (Fisher-Yates from injected randomness)."""
    order = sorted(sites)
    for i in range(len(order) - 1, 0, -1):
        j = int.from_bytes(rand(8), "big") % (i + 1)
        order[i], order[j] = order[j], order[i]
    return order


def neighbour_graph(sites: list[str], k: int, rand: RandomBytes) -> dict[str, tuple[str, ...]]:
    """{site: its sorted neighbours}: complete when k >= n - 1, else k-regular (k even)."""
    n = len(set(sites))
    if n != len(sites) or n < 2:
        raise SecAggError(f"a roster needs at least 2 distinct sites, got {sorted(sites)}")
    if k >= n - 1:
        return {s: tuple(sorted(set(sites) - {s})) for s in sites}
    if k < 2 or k % 2:
        raise SecAggError(f"k = {k} neighbours: must be even and >= 2 below n - 1 = {n - 1}")
    order = ring_order(sites, rand)
    graph = {}
    for i, site in enumerate(order):
        near = {order[(i + d) % n] for d in range(1, k // 2 + 1)}
        near |= {order[(i - d) % n] for d in range(1, k // 2 + 1)}
        graph[site] = tuple(sorted(near))
    return graph


def check_threshold(k_holders: int, threshold: int) -> None:
    """(k + 1) / 2 < t <= k + 1 for k + 1 = `k_holders` share holders."""
    if not (2 * threshold > k_holders and threshold <= k_holders):
        raise SecAggError(
            f"threshold t = {threshold} with {k_holders} share holders (k neighbours + the "
            f"site): need {k_holders // 2 + 1} <= t <= {k_holders}"
        )


@dataclass(frozen=True)
class Roster:
    """Signed by the coordinator: run, round, the sites with their advertisement digests, the
    neighbour graph and the threshold."""

    run_id: str
    round: int
    advertisements: dict[str, str]  # site -> Advertisement.digest()
    neighbours: dict[str, tuple[str, ...]]
    threshold: int
    signature: bytes = b""
    # sites the coordinator excluded at relay (they shared nothing; `Exclusion`, signed on its
    # own): out of the graph, so no one masks with them; not part of the signed body
    excluded: tuple[str, ...] = ()

    @property
    def sites(self) -> list[str]:
        return sorted(self.advertisements)

    @property
    def members(self) -> list[str]:
        """The roster's sites that are still in the round (all but the excluded ones)."""
        return [s for s in self.sites if s not in self.excluded]

    def live_neighbours(self, site: str) -> tuple[str, ...]:
        """`site`'s neighbours that are still in the round."""
        return tuple(v for v in self.neighbours[site] if v not in self.excluded)

    def holders(self, site: str) -> list[str]:
        """Who holds shares of `site`'s secrets: its neighbours and itself, sorted."""
        return sorted({site, *self.neighbours[site]})

    def index(self, site: str) -> int:
        """The site's public Shamir x (1-based position in the sorted roster)."""
        return self.sites.index(site) + 1

    def body(self) -> dict:
        return {
            "kind": ROSTER_KIND,
            "run_id": self.run_id,
            "round": self.round,
            "advertisements": dict(sorted(self.advertisements.items())),
            "neighbours": {s: list(v) for s, v in sorted(self.neighbours.items())},
            "threshold": self.threshold,
        }


def make_roster(
    run_id: str,
    round_: int,
    advertisements: Mapping[str, Advertisement],
    site_keys: Mapping[str, Ed25519PublicKey],
    k: int,
    threshold: int,
    coordinator_key: Ed25519PrivateKey,
    rand: RandomBytes,
) -> Roster:
    """Verify every advertisement, draw the graph, sign. SecAggError names a bad site."""
    for site, ad in advertisements.items():
        if site not in site_keys:
            raise SecAggError(f"site {site} advertised keys but is not in the federation")
        verify_advertisement(ad, run_id, round_, site, site_keys[site])
    graph = neighbour_graph(list(advertisements), k, rand)
    degree = len(next(iter(graph.values())))
    check_threshold(degree + 1, threshold)
    unsigned = Roster(
        run_id, round_, {s: a.digest() for s, a in advertisements.items()}, graph, threshold
    )
    return Roster(**{**unsigned.__dict__, "signature": sign(unsigned.body(), coordinator_key)})


def verify_roster(
    roster: Roster,
    run_id: str,
    round_: int,
    coordinator_public: Ed25519PublicKey,
    own: Advertisement,
) -> Roster:
    """A site's checks of the roster before it shares anything: the coordinator's signature,
    run and round, its own advertisement pinned unchanged, a symmetric graph of equal degree
    and a threshold that keeps both shares of a site out of reach."""
    where = f"roster of run {roster.run_id} round {roster.round}"
    verify(roster.body(), roster.signature, coordinator_public, where)
    if (roster.run_id, roster.round) != (run_id, round_):
        raise SecAggError(f"{where}: expected run {run_id} round {round_}; refused")
    if roster.advertisements.get(own.site_id) != own.digest():
        raise SecAggError(
            f"{where}: site {own.site_id}'s advertisement is missing or not the one it signed"
        )
    sites = set(roster.sites)
    if set(roster.neighbours) != sites:
        raise SecAggError(f"{where}: the graph and the sites differ")
    degrees = {len(v) for v in roster.neighbours.values()}
    for site, near in roster.neighbours.items():
        if site in near or not set(near) <= sites:
            raise SecAggError(f"{where}: site {site}'s neighbours {near} are not in the roster")
        if any(site not in roster.neighbours[v] for v in near):
            raise SecAggError(f"{where}: the neighbour graph is not symmetric at site {site}")
    if len(degrees) != 1:
        raise SecAggError(f"{where}: the graph is not regular (degrees {sorted(degrees)})")
    check_threshold(degrees.pop() + 1, roster.threshold)
    return roster


@dataclass(frozen=True)
class Exclusion:
    """Signed by the coordinator at relay: roster sites that shared nothing, with the reason;
    every site and the coordinator drop them from the round's graph (`Roster.excluded`)."""

    run_id: str
    round: int
    excluded: dict[str, str]  # site -> reason
    signature: bytes = b""

    def body(self) -> dict:
        return {
            "kind": EXCLUSION_KIND,
            "run_id": self.run_id,
            "round": self.round,
            "excluded": dict(sorted(self.excluded.items())),
        }


def exclusion_problems(roster: Roster, excluded: Mapping[str, str], quorum: int) -> list[str]:
    """Why the round cannot go on without `excluded` (empty: it can): too few sites left for
    the quorum or the threshold, or a remaining site with fewer than t live share holders
    (itself and its remaining neighbours; its masks could not be recovered if it dropped)."""
    left = [s for s in roster.sites if s not in excluded]
    t = roster.threshold
    problems = []
    if len(left) < max(quorum, 2, t):
        problems.append(
            f"{len(left)} site(s) left, fewer than max(quorum {quorum}, 2, threshold t = {t})"
        )
    for site in left:
        holders = 1 + sum(1 for v in roster.neighbours[site] if v not in excluded)
        if holders < t:
            problems.append(
                f"site {site} keeps {holders} live share holder(s) (itself and its remaining "
                f"neighbours), fewer than t = {t}"
            )
    return problems


def make_exclusion(
    roster: Roster, excluded: Mapping[str, str], coordinator_key: Ed25519PrivateKey
) -> Exclusion:
    unknown = sorted(set(excluded) - set(roster.sites))
    if unknown:
        raise SecAggError(f"excluded site(s) {', '.join(unknown)} are not in the roster")
    unsigned = Exclusion(roster.run_id, roster.round, dict(excluded))
    return Exclusion(**{**unsigned.__dict__, "signature": sign(unsigned.body(), coordinator_key)})


def apply_exclusion(
    roster: Roster, exclusion: Exclusion, coordinator_public: Ed25519PublicKey
) -> Roster:
    """`roster` without the excluded sites, once the exclusion's signature, run and round
    check out (SecAggError otherwise)."""
    from dataclasses import replace

    verify(exclusion.body(), exclusion.signature, coordinator_public, "SecAgg+ exclusion")
    if (exclusion.run_id, exclusion.round) != (roster.run_id, roster.round):
        raise SecAggError(
            f"exclusion for run {exclusion.run_id} round {exclusion.round} does not belong to "
            f"the roster of run {roster.run_id} round {roster.round}"
        )
    unknown = sorted(set(exclusion.excluded) - set(roster.sites))
    if unknown:
        raise SecAggError(f"exclusion names site(s) {', '.join(unknown)} outside the roster")
    return replace(roster, excluded=tuple(sorted(exclusion.excluded)))
