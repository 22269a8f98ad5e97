"""Federation setup for protection he (`pipelines.he_setup`): a context every bucket already
holds is kept; otherwise one is made, secret copies to the sites, the public one to the
coordinator; `fedpipe he-setup` writes the files (the secret ones 0600) and never twice."""

from __future__ import annotations

import stat
from pathlib import Path

from components.he.wire import unpack_context
from pipelines.cli import main
from pipelines.he_setup import COORDINATOR_FILE, SITE_FILE, install_local
from tests.support.paths import POLICIES_DIR, SITES_DIR


def _install(buckets: dict[str, bytes]):
    sites = ["a", "b"]
    return install_local(
        sites,
        read_site=buckets.get,
        read_coordinator=lambda: buckets.get("coordinator"),
        put_site=buckets.__setitem__,
        put_coordinator=lambda data: buckets.__setitem__("coordinator", data),
    )


def test_install_local_makes_one_context_then_keeps_it():
    buckets: dict[str, bytes] = {}
    first = _install(buckets)
    assert first.created
    assert unpack_context(buckets["a"]).secret and unpack_context(buckets["b"]).secret
    assert not unpack_context(buckets["coordinator"]).secret
    assert {unpack_context(v).context_id for v in buckets.values()} == {first.context_id}
    kept = _install(buckets)
    assert not kept.created and kept.context_id == first.context_id
    # a site that lost its copy: a new context for everyone (one id everywhere again)
    del buckets["b"]
    renewed = _install(buckets)
    assert renewed.created and renewed.context_id != first.context_id
    assert {unpack_context(v).context_id for v in buckets.values()} == {renewed.context_id}


def test_he_setup_writes_secret_files_for_sites_only(tmp_path: Path, capsys):
    out = tmp_path / "keys"
    args = ["he-setup", "--sites", str(SITES_DIR), "--policies", str(POLICIES_DIR)]
    assert main([*args, "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "s3://hospital-berlin-fl/he/context.secret" in printed
    for site in ("clinic-boston", "hospital-berlin", "hospital-paris"):
        path = out / site / SITE_FILE
        assert unpack_context(path.read_bytes()).secret
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    public = out / "coordinator" / COORDINATOR_FILE
    assert not unpack_context(public.read_bytes()).secret
    assert not (out / "coordinator" / SITE_FILE).exists()
    assert main([*args, "--out", str(out)]) == 2  # a second setup would split the keys
    assert "already holds context files" in capsys.readouterr().err
