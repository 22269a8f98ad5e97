"""Update protection: per-site and coordinator time and bytes per round, none / secagg / he.

For P in {1e5, 1e6} parameters and K in {10, 100} sites, beside the plain export in the same
run:
* `none`: a site serializes its float32 update (`dump_tensors`, what export writes); the
  coordinator parses and sums K of them.
* `secagg` (components/secagg), complete graph (k = K - 1) and sparse (k = 8, Bell et al.):
  every site really runs its part (round keys and signed advertisement, roster check,
  Shamir shares sealed for its k neighbours, quantize to 32-bit words, mask, answer the
  unmask request); the per-site figure is the median over the K sites, `mask` the masking
  part alone. The coordinator verifies the advertisements and signs the roster, sums the
  masked vectors as they arrive, signs the request, reconstructs the K self masks and
  removes them; the result is checked to equal the sum of the quantized updates exactly.
  Site bytes: masked vector + advertisement + outgoing shares + answer.
  An extra row drops `--dropouts` sites (default 5) after sharing at the largest size: the
  coordinator then also rebuilds their masking keys and removes their pairwise masks.
* `he` (components/he, CKKS N = 8192, scale 2^40): one site's encryption of [w x, w] and one
  decryption are timed; the coordinator adds K ciphertexts, timed with K copies of that
  site's ciphertext (an addition costs the same whatever the plaintext); the decrypted mean
  is checked against the plaintext.
Timing targets: none (figures only). Usage: `python -m pipelines.benchmarks.protection_bench
[--sizes 100000x10,...] [--skip he,secagg-full]`.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import numpy as np

SIZES = ((100_000, 10), (100_000, 100), (1_000_000, 10), (1_000_000, 100))
SPARSE_K = 8
CLIP = 0.05
RUN = "bench"


def _update(seed: int, p: int) -> np.ndarray:
    return np.random.default_rng(seed).normal(scale=0.01, size=p)


def _row(p, k_sites, mode, graph, site_s, site_b, coord_s, coord_in, plain_b, check) -> None:
    print(
        f"{p:>8} {k_sites:>4} {mode:>7} {graph:>5} {site_s:>9.3f} {site_b / 1e6:>9.2f} "
        f"{site_b / plain_b:>6.2f}x {coord_s:>9.3f} {coord_in / 1e6:>10.1f}  {check}",
        flush=True,
    )


def bench_none(p: int, k_sites: int) -> int:
    from components.common.tensors import dump_tensors, load_tensors

    x = _update(0, p).astype(np.float32)
    t0 = time.perf_counter()
    blob = dump_tensors({"update": x})
    site_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    total = np.zeros(p, dtype=np.float64)
    for _ in range(k_sites):
        total += load_tensors(blob)["update"]
    coord_s = time.perf_counter() - t0
    _row(p, k_sites, "none", "-", site_s, len(blob), coord_s, k_sites * len(blob), len(blob), "")
    return len(blob)


def bench_secagg(p: int, k_sites: int, k: int, plain_bytes: int, dropped: int = 0) -> None:
    from components.secagg.graph import make_roster
    from components.secagg.keys import ed25519_from, signed_bytes
    from components.secagg.quantize import Quantizer
    from components.secagg.rand import os_random
    from components.secagg.site import SiteSession
    from components.secagg.unmask import make_request, remove_masks

    ids = [f"site-{i:03d}" for i in range(k_sites)]
    site_secret = {s: ed25519_from(os_random) for s in ids}
    site_keys = {s: key.public_key() for s, key in site_secret.items()}
    coordinator = ed25519_from(os_random)
    quantizer = Quantizer.for_sum(k_sites, CLIP, 32)
    threshold = (k + 1) // 2 + 1
    site_time = dict.fromkeys(ids, 0.0)
    mask_time = {}
    sent = dict.fromkeys(ids, 0)

    sessions = {}
    for s in ids:
        t0 = time.perf_counter()
        sessions[s] = SiteSession(RUN, 1, s, site_secret[s])
        site_time[s] += time.perf_counter() - t0
        ad = sessions[s].advertisement
        sent[s] += len(signed_bytes(ad.body())) + len(ad.signature)
    ads = {s: sess.advertisement for s, sess in sessions.items()}
    t0 = time.perf_counter()
    roster = make_roster(RUN, 1, ads, site_keys, k, threshold, coordinator, os_random)
    coord_s = time.perf_counter() - t0
    outbox = {}
    for s, sess in sessions.items():
        t0 = time.perf_counter()
        sess.accept_roster(roster, coordinator.public_key(), ads, site_keys)
        outbox[s] = sess.make_shares()
        site_time[s] += time.perf_counter() - t0
        sent[s] += sum(len(x.ciphertext) + 64 for x in outbox[s])
    inbox: dict[str, list] = {s: [] for s in ids}
    for shares in outbox.values():
        for share in shares:
            inbox[share.receiver].append(share)
    total = np.zeros(p, dtype=quantizer.dtype)
    expected = np.zeros(p, dtype=quantizer.dtype)
    coord_in = 0
    gone = set(ids[::-1][:dropped])  # drop after sharing: no masked vector, no answer
    alive = [s for s in ids if s not in gone]
    for i, s in enumerate(ids):
        if s in gone:
            continue
        x = _update(i, p)
        t0 = time.perf_counter()
        sessions[s].receive_shares(inbox[s])
        q = quantizer.quantize(x)
        t1 = time.perf_counter()
        masked = sessions[s].mask(q, 32)
        t2 = time.perf_counter()
        site_time[s] += t2 - t0
        mask_time[s] = t2 - t1
        sent[s] += masked.nbytes
        coord_in += masked.nbytes
        expected += q
        t0 = time.perf_counter()
        total += masked  # the coordinator sums as vectors arrive
        coord_s += time.perf_counter() - t0
    t0 = time.perf_counter()
    request = make_request(roster, alive, coordinator)
    coord_s += time.perf_counter() - t0
    responses = []
    for s in alive:
        t0 = time.perf_counter()
        responses.append(sessions[s].respond(request, coordinator.public_key()))
        site_time[s] += time.perf_counter() - t0
        sent[s] += 80 * len(responses[-1].self_mask)
    t0 = time.perf_counter()
    unmasked = remove_masks(total, alive, roster, ads, responses, 32)
    mean = quantizer.dequantize_sum(unmasked, len(alive)) / len(alive)
    coord_s += time.perf_counter() - t0
    exact = bool(np.array_equal(unmasked, expected))
    graph = ("full" if k >= k_sites - 1 else f"k={k}") + (f",-{dropped}" if dropped else "")
    check = f"sum exact: {exact}; mask {statistics.median(mask_time.values()):.3f} s/site"
    _row(
        p,
        k_sites,
        "secagg",
        graph,
        statistics.median(site_time[s] for s in alive),
        statistics.median(sent[s] for s in alive),
        coord_s,
        coord_in,
        plain_bytes,
        check,
    )
    del mean


def bench_he(p: int, k_sites: int, plain_bytes: int) -> None:
    from components.he.ckks import (
        add_encrypted,
        coordinator_context_bytes,
        decrypt_mean,
        encrypt_weighted,
        load_context,
        new_context,
        site_context_bytes,
    )

    ctx = new_context()
    site_ctx = load_context(site_context_bytes(ctx), secret=True)
    coordinator_ctx = load_context(coordinator_context_bytes(ctx), secret=False)
    x = _update(0, p)
    t0 = time.perf_counter()
    encrypted = encrypt_weighted(site_ctx, x, 100.0)
    encrypt_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    aggregate = add_encrypted(coordinator_ctx, [encrypted] * k_sites)
    coord_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    mean, _ = decrypt_mean(site_ctx, aggregate)
    decrypt_s = time.perf_counter() - t0
    rel = float(np.linalg.norm(mean - x) / np.linalg.norm(x))
    _row(
        p,
        k_sites,
        "he",
        "-",
        encrypt_s + decrypt_s,
        encrypted.nbytes,
        coord_s,
        k_sites * encrypted.nbytes,
        plain_bytes,
        f"encrypt {encrypt_s:.2f} s, decrypt {decrypt_s:.2f} s, rel. error {rel:.1e}",
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="", help="PxK,... (default: all four)")
    parser.add_argument("--skip", default="", help="comma list of he, secagg-full, secagg-sparse")
    parser.add_argument(
        "--dropouts", type=int, default=5, help="sites dropped after sharing in an extra k=8 row"
    )
    args = parser.parse_args(argv)
    sizes = SIZES
    if args.sizes:
        sizes = tuple(tuple(int(v) for v in s.split("x")) for s in args.sizes.split(","))
    skip = set(filter(None, args.skip.split(",")))
    print(
        f"{'P':>8} {'K':>4} {'mode':>7} {'graph':>5} {'site s':>9} {'site MB':>9} "
        f"{'vs plain':>7} {'coord s':>9} {'coord MB in':>10}  check"
    )
    for p, k_sites in sizes:
        plain = bench_none(p, k_sites)
        if "secagg-full" not in skip:
            bench_secagg(p, k_sites, k_sites - 1, plain)
        if "secagg-sparse" not in skip and k_sites - 1 > SPARSE_K:
            bench_secagg(p, k_sites, SPARSE_K, plain)
        if "he" not in skip:
            bench_he(p, k_sites, plain)
    if args.dropouts and "secagg-sparse" not in skip:
        p, k_sites = sizes[-1]
        if k_sites - 1 > SPARSE_K and k_sites - args.dropouts > (SPARSE_K + 1) // 2 + 1:
            bench_secagg(p, k_sites, SPARSE_K, p * 4, dropped=args.dropouts)
    return 0


if __name__ == "__main__":
    sys.exit(main())
