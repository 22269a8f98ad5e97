"""A site's own policy against a pipeline's `dp.mode` (pure): distributed DP where the site asks
local DP, or more assumed honest sites than the site assumes, is refused; the reverse is not."""

from __future__ import annotations

import json

from components.domain.models import Policy, Site
from components.validate.admission import RunFacts, decide
from tests.support.site_inputs import policy_json, site_json

SITE = Site.parse_raw(site_json("hospital-berlin"))


def _policy(mode: str, h: int | None) -> Policy:
    body = json.loads(policy_json())
    body["dp"].update(mode=mode, min_honest_sites=h)
    body["aggregation"]["protection"] = "secagg"
    return Policy.parse_obj(body)


def _reasons(own: Policy, compiled: Policy) -> list[str]:
    facts = RunFacts(run_id="run-1", rounds=2, image="fedpipe:test", rule="fedavg")
    return [r for r in decide(SITE, own, compiled, facts).reasons if r.startswith("dp.")]


def test_distributed_where_the_site_asks_local_dp_is_refused() -> None:
    assert _reasons(_policy("local", None), _policy("distributed", 2)) == [
        "dp.mode: the pipeline runs distributed DP (each site adds only a share of the noise), "
        "the site's own policy asks local DP (every update carries its full noise)"
    ]


def test_more_assumed_honest_sites_than_the_site_assumes_is_refused() -> None:
    assert _reasons(_policy("distributed", 2), _policy("distributed", 3)) == [
        "dp.min_honest_sites: the pipeline assumes 3 honest sites (each adds 1/3 of the "
        "noise), the site's own policy 2"
    ]


def test_stronger_settings_than_the_site_asks_are_admitted() -> None:
    assert _reasons(_policy("distributed", 3), _policy("distributed", 2)) == []
    assert _reasons(_policy("distributed", 2), _policy("local", None)) == []
