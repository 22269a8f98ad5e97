"""Bytes of the encrypted global model artifact per round under `aggregation.protection: he`.

Three sites weighted by example count, P parameters (default 1e5, 25 CKKS chunks), R rounds
(default 5): each round the sites encrypt a seeded random update, the coordinator builds the
next encrypted global model with the public context (`components.he.global_model.next_model`)
and writes the artifact folder (`write_encrypted`); a row per round gives the folder's bytes
and the decrypted model's relative error against the plaintext FedAvg chain. Figures only,
no targets. Usage: `python -m pipelines.benchmarks.he_model_size [--params 100000] [--rounds 5]`.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np


def main(argv: list[str] | None = None) -> int:
    from components.common.global_model import GlobalModel
    from components.he.ckks import encrypt_weighted
    from components.he.global_model import (
        decrypt_global,
        encrypted_from,
        next_model,
        read_any,
        write_encrypted,
    )
    from components.he.keys import new_federation_keys, open_envelope

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args(argv)
    keys = new_federation_keys()
    site = open_envelope(keys.site, secret=True, where="site")
    public = open_envelope(keys.coordinator, secret=False, where="coordinator")
    rng = np.random.default_rng(0)
    weights = [122.0, 180.0, 97.0]
    plain = rng.normal(size=args.params).astype(np.float32)
    meta = {"model_name": "bench", "dataset": "bench", "parent": None}
    previous: object = GlobalModel({"w": plain.copy()}, {**meta, "version": 0})
    print("round  artifact_bytes  rel_error")
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(1, args.rounds + 1):
            deltas = [rng.normal(scale=0.01, size=args.params) for _ in weights]
            cts = [
                encrypt_weighted(site.context, d, w) for d, w in zip(deltas, weights, strict=True)
            ]
            bundle = next_model(previous, public.context, public.context_id, cts, sum(weights))
            enc = encrypted_from(
                previous,
                context_id=public.context_id,
                version=r,
                bundle=bundle,
                meta={**meta, "version": r, "parent": f"v{r - 1}"},
            )
            folder = Path(tmp) / f"v{r}"
            write_encrypted(folder, enc)
            previous = read_any(folder)
            plain = plain + np.average(deltas, axis=0, weights=weights).astype(np.float32)
            got = decrypt_global(enc, site.context, site.context_id).tensors["w"]
            size = sum(p.stat().st_size for p in folder.iterdir())
            rel = float(np.linalg.norm(got - plain) / np.linalg.norm(plain))
            print(f"{r:5d}  {size:14d}  {rel:.2e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
