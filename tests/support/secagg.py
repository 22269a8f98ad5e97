"""An in-memory SecAgg+ federation for tests (seeded keys and randomness)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from components.secagg.graph import make_roster
from components.secagg.keys import ed25519_from
from components.secagg.quantize import Quantizer
from components.secagg.rand import seeded_random
from components.secagg.site import SiteSession
from components.secagg.unmask import make_request, unmask_sum

RUN = "run-1"


@dataclass
class Federation:
    sessions: dict
    site_keys: dict
    coordinator_key: object
    roster: object
    ads: dict


def setup(n: int, k: int, t: int, seed: int = 0, round_: int = 1) -> Federation:
    rand = seeded_random(f"fed-{seed}")
    ids = [f"site-{i:02d}" for i in range(n)]
    site_secret = {s: ed25519_from(rand) for s in ids}
    coordinator_key = ed25519_from(rand)
    sessions = {
        s: SiteSession(RUN, round_, s, site_secret[s], seeded_random(f"{seed}-{s}-{round_}"))
        for s in ids
    }
    site_keys = {s: key.public_key() for s, key in site_secret.items()}
    ads = {s: sess.advertisement for s, sess in sessions.items()}
    roster = make_roster(RUN, round_, ads, site_keys, k, t, coordinator_key, rand)
    for sess in sessions.values():
        sess.accept_roster(roster, coordinator_key.public_key(), ads, site_keys)
    outbox = [share for sess in sessions.values() for share in sess.make_shares()]
    for s, sess in sessions.items():
        sess.receive_shares([x for x in outbox if x.receiver == s])
    return Federation(sessions, site_keys, coordinator_key, roster, ads)


def updates(n: int, size: int, seed: int = 1) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.normal(scale=0.05, size=size) for _ in range(n)]


def run_round(fed: Federation, vectors, quantizer: Quantizer, drop: tuple[str, ...] = ()):
    """Every site masks; `drop` never deliver; survivors answer; the coordinator unmasks."""
    ids = sorted(fed.sessions)
    quantized = {s: quantizer.quantize(v) for s, v in zip(ids, vectors, strict=True)}
    masked = {
        s: fed.sessions[s].mask(quantized[s], quantizer.modulus_bits) for s in ids if s not in drop
    }
    request = make_request(fed.roster, sorted(masked), fed.coordinator_key)
    pub = fed.coordinator_key.public_key()
    responses = [fed.sessions[s].respond(request, pub) for s in sorted(masked)]
    total = unmask_sum(fed.roster, fed.ads, masked, responses, quantizer.modulus_bits)
    expected = np.zeros_like(total)
    for s in masked:
        expected = expected + quantized[s]
    return total, expected, masked, quantized
