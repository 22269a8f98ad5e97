"""`fedpipe audit verify RUN` / `fedpipe audit show RUN`: read every audit chain of a run
(each site's from its own bucket, the coordinator's from its GCS bucket), verify signatures,
links, checkpoints and cross-references, print the timeline (`components.audit`). With the
report task's output files at hand (`--local`: the run's kfp.local pipeline root; else
`--report-dir`), their sha256 are compared with the coordinator's report record."""

from __future__ import annotations

import argparse
from pathlib import Path

from pipelines.cli import CommandError
from pipelines.commands._federation_args import add_federation_arguments, load_or_fail

HELP = "verify (or show) a run's tamper-evident audit chains and print their timeline"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=("verify", "show"), help="verify: exit 1 on a problem")
    parser.add_argument("run_id", metavar="RUN", help="the run id the chains were written under")
    add_federation_arguments(parser)
    parser.add_argument(
        "--local",
        action="store_true",
        help="a `fedpipe run --local` run: read the chains from the bucket state it saved "
        "(RUNS/.state) and the keys from its site files (RUNS/RUN/config); --sites/--policies "
        "are ignored",
    )
    parser.add_argument(
        "--runs-dir", type=Path, default=Path("runs"), metavar="RUNS", help="with --local"
    )
    parser.add_argument(
        "--report-dir",
        type=Path,
        metavar="DIR",
        help="the report task's outputs (`html`, `markdown`, `summary/summary.json`, as the "
        "pipeline root holds them, e.g. copied from it) or a local run folder (its kfp/ "
        "pipeline root is searched); their sha256 are checked against the coordinator's "
        "report record. Default with --local: RUNS/RUN",
    )
    parser.add_argument(
        "--coordinator-key",
        type=Path,
        metavar="FILE",
        help="PEM public key of the coordinator's audit chain (default: the coordinator "
        "site's signing.public_key)",
    )


def read_chains(federation, run_id: str, coordinator_pem: str) -> dict:
    """{chain name: Chain} from the object stores (the I/O edge)."""
    from components.audit.store import GcsStore, S3Store, read_chain
    from components.audit.verify import COORDINATOR
    from components.common.object_store import coordinator_gcs_client, site_minio_client

    chains = {}
    for site_id, site in federation.sites.items():
        store = S3Store(site_minio_client(site), site.object_store.bucket)
        name = f"site/{site_id}"
        chains[name] = read_chain(store, run_id, name, site.signing.public_key)
    coord = federation.coordinator
    bucket = coordinator_gcs_client(coord).bucket(coord.object_store.bucket)
    chains[COORDINATOR] = read_chain(GcsStore(bucket), run_id, COORDINATOR, coordinator_pem)
    return chains


def read_local_chains(federation, run_id: str, coordinator_pem: str, state: Path) -> dict:
    """{chain name: Chain} from a local run's saved bucket state (`state/<s3|gcs>/<bucket>`)."""
    from components.audit.store import DirStore, read_chain
    from components.audit.verify import COORDINATOR

    chains = {}
    for site_id, site in federation.sites.items():
        store = DirStore(state / "s3" / site.object_store.bucket)
        name = f"site/{site_id}"
        chains[name] = read_chain(store, run_id, name, site.signing.public_key)
    store = DirStore(state / "gcs" / federation.coordinator.object_store.bucket)
    chains[COORDINATOR] = read_chain(store, run_id, COORDINATOR, coordinator_pem)
    return chains


# the report record's file names -> where the report task's outputs are under its task folder
REPORT_FILES = {"summary.json": "summary/summary.json", "html": "html", "markdown": "markdown"}


def report_task_dir(folder: Path) -> Path:
    """The report task's output folder: `folder` itself, or in a local run folder the newest
    `kfp/<pipeline>-<timestamp>/report` (the pipeline root kfp.local wrote; the run folder's
    own report.html/summary.json are re-rendered by the host with more data, not the task's)."""
    found = sorted((folder / "kfp").glob("*/report")) if (folder / "kfp").is_dir() else []
    return found[-1] if found else folder


def read_report_files(folder: Path) -> tuple[str, dict[str, bytes | None]]:
    """(where, {record name: bytes or None when missing}) of the report task's outputs."""
    where = report_task_dir(folder)
    files: dict[str, bytes | None] = {}
    for name, rel in REPORT_FILES.items():
        try:
            files[name] = (where / rel).read_bytes()
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            files[name] = None
        except OSError as exc:
            raise CommandError(f"{where / rel}: {exc}") from None
    return str(where), files


def coordinator_key(args: argparse.Namespace, federation) -> str:
    if args.coordinator_key:
        try:
            return args.coordinator_key.read_text()
        except OSError as exc:
            raise CommandError(f"--coordinator-key {args.coordinator_key}: {exc}") from None
    signing = federation.coordinator.signing
    if signing is None:
        raise CommandError(
            f"the coordinator site {federation.coordinator.id!r} has no signing.public_key: "
            f"pass its audit key with --coordinator-key FILE"
        )
    return signing.public_key


def run(args: argparse.Namespace) -> int:
    from components.audit.records import AuditFormatError
    from components.audit.verify import format_timeline, verify_run
    from components.common.create_only import STORE_ERRORS

    if args.local:
        config = args.runs_dir / args.run_id / "config"
        if not (config / "sites").is_dir():
            raise CommandError(
                f"{config}/sites: no local run {args.run_id!r} under {args.runs_dir} "
                f"(give --runs-dir)"
            )
        args.sites, args.policies = str(config / "sites"), str(config / "policies")
    federation = load_or_fail(args)
    pem = coordinator_key(args, federation)
    try:
        if args.local:
            state = args.runs_dir / ".state"
            chains = read_local_chains(federation, args.run_id, pem, state)
        else:
            chains = read_chains(federation, args.run_id, pem)
    except (AuditFormatError, ValueError) as exc:
        raise CommandError(f"run {args.run_id}: {exc}") from None
    except STORE_ERRORS as exc:
        raise CommandError(f"run {args.run_id}: reading the audit chains failed: {exc}") from None
    report_dir = args.report_dir
    if report_dir is None and args.local:
        # the run's own pipeline root, when the report task got to write there
        local = args.runs_dir / args.run_id
        report_dir = local if report_task_dir(local) != local else None
    report = read_report_files(report_dir) if report_dir is not None else None
    verdict = verify_run(chains, report)
    counts = ", ".join(f"{n} {len(c.records)}" for n, c in sorted(chains.items()))
    print(f"run {args.run_id}: records per chain: {counts}")
    print(
        f"report files: checked against the report record in {report[0]}"
        if report is not None
        else "report files: not checked (give --report-dir with the report task's outputs)"
    )
    print(format_timeline(verdict))
    return 0 if verdict.ok or args.action == "show" else 1
