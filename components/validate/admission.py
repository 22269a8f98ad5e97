"""Site-side admission: the run as compiled against the site's OWN copy of its policy (pure).

The policy a site task receives was compiled into the pipeline by whoever compiled it; the
site must not trust it. `decide` compares the compiled policy and the run's settings with the
policy the site keeps itself (a ConfigMap in its cluster, or `admission/policy.json` in its
own bucket) and returns every difference that makes the run weaker than the site allows:

* image: the run's image pinned to a digest in `admission.image_digests` (when declared), and
  so is the image the task actually runs in (observed at the edge,
  `components.validate.running_image`), which must also be the one the pipeline names;
* DP: the compiled `dp` limits no looser than the site's (ε per round, lifetime ε, δ, DP off),
  DP not switched off unless the site allows it, the planned ε per round within the site's;
* destinations: every destination rule of every artifact class in the compiled policy is
  covered by a rule of the site's own policy, and every site the run actually sends an
  artifact to is allowed by the site's own rules;
* aggregation: quorum no smaller, the rule and the protection among the admitted ones, the
  protection the site's own policy asks for (if any) the run's, and a rule that can run
  under it (`components.domain.protection.rule_conflicts`);
* rounds within `admission.max_rounds`; export, encryption, retention and metrics settings no
  weaker (sample count revealed, encryption off, shorter or unlocked retention, smaller cells).

An empty list of reasons admits the run; anything else refuses it (the site abstains).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import yaml

from components.domain import jurisdictions
from components.domain.models import ARTIFACT_CLASSES, DestinationRule, Policy, Site
from components.domain.protection import rule_conflicts

ACCEPT = "accept"
REFUSE = "refuse"
_LISTS = ("sites", "roles", "regions", "providers")


@dataclass(frozen=True)
class RunFacts:
    """What the run asks of the site (from the compiled pipeline and the run's parameters).

    image: the image reference the pipeline names for the site's tasks (`repo@sha256:…`);
    running_image: the image the validate task is observed running in (None: not observed),
    running_image_source: where that was observed (or why it was not);
    destinations: {artifact class: sites the run sends this site's artifacts of that class to};
    planned_epsilon: ε per round at the run's DP settings on the site's rows (None: unknown,
    e.g. DP off or the data could not be read)."""

    run_id: str
    rounds: int
    image: str
    rule: str
    protection: str = "none"
    dp_enabled: bool = True
    planned_epsilon: float | None = None
    destinations: Mapping[str, Sequence[Site]] = field(default_factory=dict)
    running_image: str | None = None
    running_image_source: str = "not observed"


@dataclass(frozen=True)
class Admission:
    """The site's decision and every reason it refused."""

    site_id: str
    decision: str
    reasons: tuple[str, ...]
    checked: dict[str, Any]

    @property
    def accepted(self) -> bool:
        return self.decision == ACCEPT

    def summary(self) -> str:
        if self.accepted:
            return f"{self.site_id} admitted the run (checked against its own policy)"
        return f"{self.site_id} refused the run: " + "; ".join(self.reasons)


def parse_own_policy(text: str, where: str) -> Policy:
    """A Policy from JSON or YAML text; ValueError naming `where`."""
    try:
        try:
            value = json.loads(text)
        except ValueError:
            value = yaml.safe_load(text)
        return Policy.parse_obj(value)
    except (ValueError, yaml.YAMLError) as exc:
        raise ValueError(f"the site's own policy at {where} is not a valid policy: {exc}") from None


def image_digest(image: str) -> str | None:
    """The `sha256:<hex>` an image reference is pinned to, or None (a tag)."""
    _, sep, digest = image.rpartition("@")
    return digest if sep and digest.startswith("sha256:") else None


def _jurisdiction_within(entry: str, allowed: Sequence[str]) -> bool:
    """True when every country `entry` stands for falls under one of `allowed`."""
    return all(
        any(jurisdictions.matches(country, a) for a in allowed)
        for country in jurisdictions.expand(entry)
    )


def covers(own: DestinationRule, compiled: DestinationRule) -> bool:
    """True when every destination `compiled` allows is also allowed by `own` (each list `own`
    restricts must be restricted in `compiled` to a subset)."""
    for name in _LISTS:
        mine = getattr(own, name)
        if mine is not None:
            theirs = getattr(compiled, name)
            if theirs is None or not set(theirs) <= set(mine):
                return False
    if own.jurisdictions is not None:
        if compiled.jurisdictions is None:
            return False
        if not all(_jurisdiction_within(j, own.jurisdictions) for j in compiled.jurisdictions):
            return False
    return True


def _where(site: Site) -> str:
    return f"{site.id} ({site.role}, {site.jurisdiction}, {site.provider} {site.region})"


def _looser(name: str, compiled: float, own: float, reasons: list[str]) -> None:
    if compiled > own:
        reasons.append(f"{name}: the pipeline allows {compiled:g}, the site's own policy {own:g}")


def _dp(own: Policy, compiled: Policy, run: RunFacts, reasons: list[str]) -> None:
    _looser(
        "dp.epsilon_per_round", compiled.dp.epsilon_per_round, own.dp.epsilon_per_round, reasons
    )
    _looser("dp.lifetime_epsilon", compiled.dp.lifetime_epsilon, own.dp.lifetime_epsilon, reasons)
    _looser("dp.delta", compiled.dp.delta, own.dp.delta, reasons)
    if compiled.dp.allow_dp_off and not own.dp.allow_dp_off:
        reasons.append(
            "dp.allow_dp_off: the pipeline allows DP off, the site's own policy does not"
        )
    if compiled.dp.mode == "distributed" and own.dp.mode != "distributed":
        reasons.append(
            "dp.mode: the pipeline runs distributed DP (each site adds only a share of the "
            "noise), the site's own policy asks local DP (every update carries its full noise)"
        )
    elif compiled.dp.mode == "distributed" and (compiled.dp.min_honest_sites or 0) > (
        own.dp.min_honest_sites or 0
    ):
        reasons.append(
            f"dp.min_honest_sites: the pipeline assumes {compiled.dp.min_honest_sites} honest "
            f"sites (each adds 1/{compiled.dp.min_honest_sites} of the noise), the site's own "
            f"policy {own.dp.min_honest_sites}"
        )
    if not run.dp_enabled and not own.dp.allow_dp_off:
        reasons.append("dp: the run trains without DP, which the site's own policy forbids")
    planned = run.planned_epsilon
    if run.dp_enabled and planned is not None and planned > own.dp.epsilon_per_round:
        reasons.append(
            f"dp: the run's settings spend ε {planned:.3f} per round, the site's own policy "
            f"allows {own.dp.epsilon_per_round:g}"
        )


def _destinations(own: Policy, compiled: Policy, run: RunFacts, reasons: list[str]) -> None:
    for cls in ARTIFACT_CLASSES:
        mine = own.rules_for(cls)
        for i, rule in enumerate(compiled.rules_for(cls)):
            if not any(covers(o, rule) for o in mine):
                reasons.append(
                    f"rules.{cls}[{i}]: destination `{rule.describe()}` is not allowed by the "
                    f"site's own policy"
                    + (
                        f" (which allows `{'`, `'.join(o.describe() for o in mine)}`)"
                        if mine
                        else " (which sends it nowhere)"
                    )
                )
    for cls, targets in sorted(run.destinations.items()):
        mine = own.rules_for(cls)
        for target in targets:
            if not any(rule.matches(target) for rule in mine):
                reasons.append(
                    f"{cls}: the run sends it to {_where(target)}, which the site's own policy "
                    f"does not allow"
                )


def _quorum(own: Policy, compiled: Policy, reasons: list[str]) -> None:
    if compiled.aggregation.min_sites < own.aggregation.min_sites:
        reasons.append(
            f"aggregation.min_sites: the pipeline needs {compiled.aggregation.min_sites} "
            f"site(s), the site's own policy {own.aggregation.min_sites}"
        )


def _aggregation(own: Policy, compiled: Policy, run: RunFacts, reasons: list[str]) -> None:
    _quorum(own, compiled, reasons)
    limits = own.admission
    if limits.aggregation_rules is not None and run.rule not in limits.aggregation_rules:
        reasons.append(
            f"aggregation rule {run.rule!r} is not among the site's admitted rules "
            f"{sorted(limits.aggregation_rules)}"
        )
    if limits.protections is not None and run.protection not in limits.protections:
        reasons.append(
            f"update protection {run.protection!r} is not among the site's admitted "
            f"protections {sorted(limits.protections)}"
        )
    wanted = own.aggregation.protection
    if wanted != "none" and run.protection != wanted:
        reasons.append(
            f"update protection: the site's own policy asks {wanted!r}, the run uses "
            f"{run.protection!r} (its update would reach the coordinator "
            f"{'in the clear' if run.protection == 'none' else 'protected otherwise'})"
        )
    # a rule the coordinator cannot apply to a sum or to ciphertexts: refused now, before the
    # site trains, rather than by the aggregate task after everyone spent budget
    reasons.extend(rule_conflicts(run.protection, run.rule))


def _run_limits(own: Policy, run: RunFacts, reasons: list[str]) -> None:
    limits = own.admission
    if limits.max_rounds is not None and run.rounds > limits.max_rounds:
        reasons.append(
            f"rounds: the run has {run.rounds}, the site's own policy admits at most "
            f"{limits.max_rounds}"
        )
    if limits.image_digests is not None:
        digest = image_digest(run.image)
        if digest is None:
            reasons.append(
                f"image {run.image!r} is not pinned to a digest; the site admits only "
                f"{', '.join(limits.image_digests)}"
            )
        elif digest not in limits.image_digests:
            reasons.append(f"image digest {digest} is not in the site's allowlist")
        _running_image(limits.image_digests, digest, run, reasons)


def _running_image(
    allowed: Sequence[str], named: str | None, run: RunFacts, reasons: list[str]
) -> None:
    """The image the task runs in: observed, pinned, allowed and the one the pipeline names."""
    where = run.running_image_source
    if run.running_image is None:
        reasons.append(
            f"the image this task runs in could not be observed ({where}); the site admits "
            f"only images it can check against {', '.join(allowed)}"
        )
        return
    running = image_digest(run.running_image)
    if running is None:
        reasons.append(
            f"the image this task runs in, {run.running_image!r} (from {where}), is not "
            f"pinned to a digest"
        )
    elif running not in allowed:
        reasons.append(
            f"the image this task runs in has digest {running} (from {where}), which is not "
            f"in the site's allowlist"
        )
    elif named is not None and running != named:
        reasons.append(
            f"the pipeline names image digest {named}, but this task runs in {running} "
            f"(from {where})"
        )


def _storage(own: Policy, compiled: Policy, reasons: list[str]) -> None:
    if compiled.export.reveal_num_examples and not own.export.reveal_num_examples:
        reasons.append(
            "export.reveal_num_examples: the pipeline reveals the sample count, the site's own "
            "policy hides it"
        )
    for name in ("at_rest", "in_transit"):
        theirs, mine = getattr(compiled.encryption, name), getattr(own.encryption, name)
        if theirs != mine and (theirs == "none" or mine != "none"):
            reasons.append(
                f"encryption.{name}: the pipeline says {theirs!r}, the site's own policy {mine!r}"
            )
    if own.retention.object_lock and not compiled.retention.object_lock:
        reasons.append("retention.object_lock: off in the pipeline, on in the site's own policy")
    if compiled.retention.days != own.retention.days:
        reasons.append(
            f"retention.days: the pipeline keeps updates {compiled.retention.days} day(s), the "
            f"site's own policy {own.retention.days}"
        )
    if compiled.metrics.min_cell_count < own.metrics.min_cell_count:
        reasons.append(
            f"metrics.min_cell_count: the pipeline suppresses cells below "
            f"{compiled.metrics.min_cell_count}, the site's own policy below "
            f"{own.metrics.min_cell_count}"
        )


def _identity(site: Site, own: Policy, compiled: Policy, reasons: list[str]) -> None:
    if own.id != site.policy:
        reasons.append(
            f"the site's own policy is {own.id!r}, but its site spec names policy {site.policy!r}"
        )
    if compiled.id != own.id:
        reasons.append(f"the pipeline carries policy {compiled.id!r}, the site's own is {own.id!r}")


def policy_refusals(site: Site, own: Policy, compiled: Policy) -> tuple[str, ...]:
    """The reasons `decide` gives from the two policies alone, whatever the run (policy id,
    DP limits, destination rules, quorum, storage): a site whose own copy gives any refuses
    every run compiled from `compiled` (`fedpipe doctor` asks this before any run)."""
    reasons: list[str] = []
    neutral = RunFacts(run_id="", rounds=0, image="", rule="")
    _identity(site, own, compiled, reasons)
    _dp(own, compiled, neutral, reasons)
    _destinations(own, compiled, neutral, reasons)
    _quorum(own, compiled, reasons)
    _storage(own, compiled, reasons)
    return tuple(reasons)


def decide(site: Site, own: Policy, compiled: Policy, run: RunFacts) -> Admission:
    """Compare the compiled policy and the run with the site's own policy; every reason to
    refuse, in a fixed order (policy id, image and rounds, DP, destinations, aggregation,
    storage)."""
    reasons: list[str] = []
    _identity(site, own, compiled, reasons)
    _run_limits(own, run, reasons)
    _dp(own, compiled, run, reasons)
    _destinations(own, compiled, run, reasons)
    _aggregation(own, compiled, run, reasons)
    _storage(own, compiled, reasons)
    checked = {
        "run_id": run.run_id,
        "rounds": run.rounds,
        "image": run.image,
        "running_image": run.running_image,
        "running_image_source": run.running_image_source,
        "rule": run.rule,
        "protection": run.protection,
        "dp_enabled": run.dp_enabled,
        "planned_epsilon": run.planned_epsilon
        if run.planned_epsilon is None or math.isfinite(run.planned_epsilon)
        else "unbounded",
        "destinations": {c: sorted(s.id for s in t) for c, t in sorted(run.destinations.items())},
    }
    return Admission(site.id, REFUSE if reasons else ACCEPT, tuple(reasons), checked)
