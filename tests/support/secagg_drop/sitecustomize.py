"""Test-only failures of one site in a local secagg run (loaded as `sitecustomize`).

`tests/e2e/test_secagg_run.py` puts this folder first on the PYTHONPATH of every task of a
local run (`RunOptions.task_env`) and names a site and round in `FEDPIPE_TEST_LOSE_MASKED`
(`<site>:<round>`). That site's export masks and writes its update as always (shares relayed,
manifest signed, export record in its chain), then the masked object is removed from its
bucket: the site dropped after masking, before the coordinator's request.
`FEDPIPE_TEST_SHARES_FAIL` (`<site>`): that site's object store fails (a connection error)
while it seals its shares (`exchange.site_share`), as a store going away would. Nothing in
production reads these variables; without them this module does nothing.
"""

from __future__ import annotations

import os

_SPEC = os.environ.get("FEDPIPE_TEST_LOSE_MASKED", "")

if _SPEC:
    import components.export.masked as _masked

    _LOSE_SITE, _LOSE_ROUND = _SPEC.rsplit(":", 1)
    _original = _masked.run_masked

    def _run_masked_then_lose(task, **kwargs):  # type: ignore[no-untyped-def]
        ref = _original(task, **kwargs)
        lose = os.environ.get("FEDPIPE_TEST_LOSE_MASKED", "") == _SPEC
        if lose and task.site_id == _LOSE_SITE and task.round_index == int(_LOSE_ROUND):
            assert ref["status"] == "masked", ref
            client = (kwargs.get("client_factory") or _masked.site_client_factory(task.site))()
            client.remove_object(ref["bucket"], ref["key"])
        return ref

    _masked.run_masked = _run_masked_then_lose

_SILENT = os.environ.get("FEDPIPE_TEST_SHARES_FAIL", "")

if _SILENT:
    import components.secagg.exchange as _exchange

    _original_share = _exchange.site_share

    def _share_or_fail(store, *args, **kwargs):  # type: ignore[no-untyped-def]
        if store.site_id == _SILENT and os.environ.get("FEDPIPE_TEST_SHARES_FAIL") == _SILENT:
            from urllib3.exceptions import ProtocolError

            raise ProtocolError(f"{_SILENT}: connection reset by peer (test)")
        return _original_share(store, *args, **kwargs)

    _exchange.site_share = _share_or_fail
