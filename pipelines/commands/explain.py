"""`fedpipe explain`: who may send what where, per site, with the rule and the DP limits, and the
network routes its pods get from the same decisions (what `fedpipe manifests` writes)."""

from __future__ import annotations

import argparse
import json
import textwrap

from components.domain.canonical import policy_digest
from components.domain.federation import Federation
from components.domain.models import ARTIFACT_CLASSES, Policy, Site
from pipelines.cli import CommandError
from pipelines.commands._federation_args import add_federation_arguments, load_or_fail
from pipelines.commands._network_args import add_network_arguments, network_from_args
from pipelines.deploy.network import NetworkConfigError, PlacementRoutes, Route, plan_routes
from pipelines.residency.checker import describe_placement
from pipelines.residency.standard import allowed_destinations

HELP = "who sends what where, readable (per site: class -> allowed destinations, DP limits)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_federation_arguments(parser)
    parser.add_argument("--site", metavar="ID", help="only this site (or the coordinator)")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    add_network_arguments(parser)


def unsafe_override_line(policy: Policy) -> str | None:
    """The loud line naming a policy's unsafe override, or None."""
    o = policy.unsafe_override
    if o is None:
        return None
    return (
        f"UNSAFE OVERRIDE (policy {policy.id} unsafe_override): "
        f"{' and '.join(o.allow_leaving_site)} may leave the site, against the design's "
        f"invariant; reason given: {o.reason}"
    )


def _limits(policy: Policy) -> list[str]:
    dp = policy.dp
    loud = unsafe_override_line(policy)
    return [
        *([loud] if loud else []),
        f"DP: epsilon {dp.epsilon_per_round:g} per round, {dp.lifetime_epsilon:g} lifetime, "
        f"delta {dp.delta:g}; training without DP "
        f"{'allowed (experiments)' if dp.allow_dp_off else 'refused'}",
        f"aggregation: at least {policy.aggregation.min_sites} sites per aggregate; "
        f"sample count {'revealed' if policy.export.reveal_num_examples else 'hidden'} in the "
        f"manifest; confusion-matrix cells below {policy.metrics.min_cell_count} suppressed",
        f"storage: encryption at rest {policy.encryption.at_rest}, in transit "
        f"{policy.encryption.in_transit}; updates kept {policy.retention.days} days"
        f"{' under object lock' if policy.retention.object_lock else ''}",
    ]


def _route(r: Route) -> dict:
    return {"kind": r.kind, "endpoint": r.endpoint, "reason": r.reason, "rules": list(r.rules)}


def _site_data(federation: Federation, site: Site, routes: PlacementRoutes) -> dict:
    policy = federation.policies[site.policy]
    sends = {
        cls: [
            {"to": a.destination, "rule": a.rule, "rule_text": a.rule_text}
            for a in allowed_destinations(federation, site.id, cls)
        ]
        for cls in ARTIFACT_CLASSES
    }
    receives = {
        cls: [
            {"from": other, "rule": a.rule}
            for other in federation.all_sites
            if other != site.id
            for a in allowed_destinations(federation, other, cls)
            if a.destination == site.id
        ]
        for cls in ARTIFACT_CLASSES
    }
    return {
        "placement": describe_placement(site),
        "policy": policy.id,
        "policy_digest": policy_digest(policy),
        "description": policy.description,
        "unsafe_override": policy.unsafe_override.dict() if policy.unsafe_override else None,
        "sends": sends,
        "receives": {c: r for c, r in receives.items() if r},
        "limits": _limits(policy),
        "network": {
            "egress": [_route(r) for r in routes.allowed],
            "withheld": [_route(r) for r in routes.withheld],
        },
    }


def _render_text(site_id: str, d: dict) -> list[str]:
    out = [f"{d['placement']}", f"  policy {d['policy']} (digest {d['policy_digest'][:12]})"]
    out += textwrap.wrap(
        d["description"], width=96, initial_indent="    ", subsequent_indent="    "
    )
    width = max(len(c) for c in ARTIFACT_CLASSES)
    out.append(f"  {'sends':<{width}}  may go to")
    for cls, dests in d["sends"].items():
        if not dests:
            out.append(f"  {cls:<{width}}  nowhere (stays on {site_id})")
        for i, a in enumerate(dests):
            label = cls if i == 0 else ""
            out.append(f"  {label:<{width}}  {a['to']}  by {a['rule']} ({a['rule_text']})")
    if d["receives"]:
        out.append("  receives")
        for cls, sources in d["receives"].items():
            for s in sources:
                out.append(f"  {cls:<{width}}  from {s['from']}  by {s['rule']}")
    out += [f"  {line}" for line in d["limits"]]
    out.append("  network: its pods may reach (NetworkPolicies of `fedpipe manifests`)")
    for r in d["network"]["egress"]:
        rules = f" [{'; '.join(r['rules'])}]" if r["rules"] else ""
        out.append(f"    {r['kind']:<17} {r['endpoint']}: {r['reason']}{rules}")
    for r in d["network"]["withheld"]:
        rules = f" [{'; '.join(r['rules'])}]" if r["rules"] else ""
        out.append(f"    no {r['kind']:<14} {r['endpoint']}: {r['reason']}{rules}")
    return out


def run(args: argparse.Namespace) -> int:
    federation = load_or_fail(args)
    ids = list(federation.all_sites)
    if args.site is not None:
        if args.site not in federation.all_sites:
            raise CommandError(
                f"--site {args.site!r}: not in {args.sites} (known: {', '.join(ids)})"
            )
        ids = [args.site]
    try:
        routes = plan_routes(federation, network_from_args(args))
    except NetworkConfigError as exc:
        raise CommandError(str(exc)) from None
    data = {sid: _site_data(federation, federation.site(sid), routes[sid]) for sid in ids}
    if args.json:
        print(json.dumps(data, indent=2, sort_keys=True))
        return 0
    coord = federation.coordinator
    lines = [
        f"Federation: {len(federation.sites)} sites ({', '.join(federation.sites)}); "
        f"coordinator {describe_placement(coord)}",
        "Anything not listed under 'may go to' stays on its own placement (deny by default).",
    ]
    for sid in ids:
        lines += ["", *_render_text(sid, data[sid])]
    print("\n".join(lines))
    return 0
