"""`fedpipe he-setup`: make the federation's CKKS context for `aggregation.protection: he`.

Writes `OUT/<site>/he-context.secret` per member site (0600, with the secret key) and
`OUT/<coordinator>/he-context.public` (without it), then prints where each goes: each site's
operator puts its file into the site's own bucket (`he/context.secret`), the coordinator's into
its GCS bucket (`he/context.public`); `fedpipe doctor` then checks they are in place. Run it
once per federation, as the federation's operator; `fedpipe run --local` does it by itself.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from pipelines.commands._federation_args import add_federation_arguments, load_or_fail

HELP = "make the CKKS context for aggregation.protection he (secret key for the sites only)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_federation_arguments(parser)
    parser.add_argument(
        "--out",
        type=Path,
        required=True,
        help="a new folder: one subfolder per site (secret context) and one for the coordinator "
        "(public context); refused if it already holds context files",
    )


def run(args: argparse.Namespace) -> int:
    from components.he.wire import COORDINATOR_CONTEXT_KEY, SITE_CONTEXT_KEY
    from pipelines.cli import CommandError
    from pipelines.he_setup import COORDINATOR_FILE, SITE_FILE, write_files

    federation = load_or_fail(args)
    out: Path = args.out
    existing = [p for p in out.glob("*/he-context.*")] if out.exists() else []
    if existing:
        raise CommandError(
            f"{out} already holds context files ({existing[0]}); a second setup would give "
            "the sites a key the coordinator's ciphertexts do not match. Use a new --out"
        )
    coordinator = federation.coordinator
    installed = write_files(out, list(federation.sites), coordinator.id)
    print(f"CKKS context {installed.context_id} (N=8192, scale 2^40) written to {out}:")
    for site_id, site in federation.sites.items():
        print(
            f"  {out / site_id / SITE_FILE}: secret key; put it into site {site_id}'s own "
            f"bucket as s3://{site.object_store.bucket}/{SITE_CONTEXT_KEY} (e.g. mc cp), "
            "then delete this copy"
        )
    print(
        f"  {out / coordinator.id / COORDINATOR_FILE}: public context (no secret key); put it "
        f"into gs://{coordinator.object_store.bucket}/{COORDINATOR_CONTEXT_KEY}"
    )
    print("never give a he-context.secret to the coordinator: it would decrypt every update")
    return 0
