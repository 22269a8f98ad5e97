"""A site's object store killed mid-run: the run ends naming the store, every ledger entry
that any store acknowledged survives (the killed one's in its data folder), nothing half
written (no summary, no temporary state folder)."""

from __future__ import annotations

import re
from pathlib import Path

import psutil
import pytest

from pipelines.local_run.options import RunError, RunOptions
from pipelines.local_run.runner import STATE_DIR, STORES_DIR, run_local
from pipelines.localstack.servers import S3Server, minio_client
from tests.support.e2e import ledger_entries
from tests.support.paths import REPO

pytestmark = pytest.mark.e2e

KILLED = "hospital-paris"
RUN_ID = "e2e-killed"


def _kill_store(port: int) -> None:
    for child in psutil.Process().children(recursive=True):
        try:
            if f"-s3.port={port}" in " ".join(child.cmdline()):
                child.kill()
                child.wait(10)
                return
        except psutil.NoSuchProcess:
            continue
    raise AssertionError(f"no S3 server on port {port} among this process's children")


def test_a_store_killed_mid_run(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    lines: list[str] = []
    ports: dict[str, int] = {}

    def emit(line: str) -> None:
        lines.append(line)
        if line.startswith("object stores:"):
            ports.update(
                {s: int(p) for s, p in re.findall(r"([\w-]+) s3://127\.0\.0\.1:(\d+)", line)}
            )
        if "round 1/2" in line and "export" in line and KILLED in line and KILLED in ports:
            _kill_store(ports.pop(KILLED))

    options = RunOptions(
        rounds=2,
        run_id=RUN_ID,
        runs_dir=runs,
        sites_dir=REPO / "sites",
        policies_dir=REPO / "policies",
        baseline=False,
    )
    with pytest.raises(RunError) as failed:
        run_local(options, emit=emit)
    message = str(failed.value)
    assert KILLED not in ports, "the store was never killed:\n" + "\n".join(lines)
    assert f"site {KILLED}'s object store (s3://127.0.0.1:" in message, message
    assert "Traceback" not in message
    # nothing half written
    assert not (runs / RUN_ID / "summary.json").exists()
    assert not [p for p in (runs / STATE_DIR).iterdir() if p.name.endswith((".tmp", ".old"))]
    # the other sites' ledgers, mirrored on exit: every round charged
    for site in ("clinic-boston", "hospital-berlin"):
        rounds = sorted(e.round for e in ledger_entries(runs, site) if e.run_id == RUN_ID)
        assert rounds == [1, 2], (site, rounds)
    # the killed site's acknowledged entry (round 1) is in its data folder
    server = S3Server(data_dir=runs / STATE_DIR / STORES_DIR / KILLED)
    server.start()
    try:
        client = minio_client(server)
        keys = [
            o.object_name
            for o in client.list_objects(
                f"{KILLED}-fl", prefix=f"ledger/{KILLED}/{RUN_ID}/", recursive=True
            )
        ]
        assert any("/round-0001/" in k for k in keys), keys
        assert client.get_object(f"{KILLED}-fl", keys[0]).read()  # SSE: readable with its kept key
    finally:
        server.stop()
