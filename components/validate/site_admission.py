"""Site-side admission at the edge: read the site's own policy, decide, sign, record.

The site's own copy of its policy comes from its own cluster or bucket, never from the
pipeline: on Kubernetes a ConfigMap named in the site file (`own_policy.config_map`) given
to validate as the environment variable `FEDPIPE_OWN_POLICY__<SITE>`; otherwise (and in
local runs, where the runner uploads it at site setup) the object `admission/policy.json`
in the site's own bucket. No own policy found means refusal (fail closed). The decision
(`components.validate.admission.decide`) is written as a signed record to the site's audit
chain and, under a fixed key, for the coordinator (`components.audit.events`).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Any

from components.audit.events import EventLog, admission_key, site_log, store_admission
from components.audit.records import Record
from components.audit.store import S3Store
from components.common.create_only import sse_for_policy
from components.common.secrets import secret_env_name, site_secret
from components.common.site_task import SiteTask
from components.datasets.io import ClientFactory, site_client_factory
from components.domain.canonical import policy_digest, sha256_hex
from components.domain.models import Policy, Site
from components.validate.admission import REFUSE, Admission, RunFacts, decide, parse_own_policy
from components.validate.running_image import ObservedImage, observe

OWN_POLICY_KEY = "admission/policy.json"
OWN_POLICY_ENV = "OWN_POLICY"
# The artifact classes a site task sends off the site in this DAG, all to the coordinator
# (validation summary and metrics to report, the DP update to aggregate).
SENT_TO_COORDINATOR = ("validation_summary", "dp_update", "metrics")


@dataclass(frozen=True)
class AdmissionInputs:
    """What validate needs beyond its site task: the image its tasks run, the aggregation
    rule of the run and the coordinator the artifacts go to (compiled constants and run
    parameters)."""

    image: str
    rule: str
    coordinator_json: str


def own_policy_text(site: Site, client: Any) -> tuple[str | None, str]:
    """(the site's own policy text or None, where it was looked for)."""
    env = secret_env_name(site.id, OWN_POLICY_ENV)
    value = os.environ.get(env)
    if value:
        ref = site.own_policy
        return value, f"ConfigMap {ref.config_map}/{ref.key}" if ref else f"env {env}"
    from minio.error import S3Error

    where = f"s3://{site.object_store.bucket}/{OWN_POLICY_KEY}"
    try:
        response = client.get_object(site.object_store.bucket, OWN_POLICY_KEY)
    except S3Error as exc:
        if exc.code in {"NoSuchKey", "NoSuchObject", "NotFound"}:
            return None, where
        raise
    try:
        return response.read().decode(), where
    finally:
        response.close()
        response.release_conn()


def planned_epsilon(task: SiteTask, rows: int | None, delta: float) -> float | None:
    """ε per round at the run's DP settings on `rows` training rows (None when unknown)."""
    s = task.settings
    if not s.dp_enabled or not rows or not s.batch_size or not s.local_epochs:
        return None
    from components.privacy.accounting import dp_sgd_event, rdp_epsilon

    dp = task.policy.dp
    if dp.mode == "distributed":  # one Skellam round calibrated to the compiled policy
        from components.privacy.skellam import round_plan
        from components.validate.budget import PREFLIGHT_DIM

        plan = round_plan(dp.epsilon_per_round, dp.delta, dp.min_honest_sites or 0, PREFLIGHT_DIM)
        return rdp_epsilon([plan.round_event], delta)
    if not 0 < s.batch_size <= rows:
        return None

    event = dp_sgd_event(rows, int(s.batch_size), int(s.local_epochs), float(s.noise_multiplier))
    return rdp_epsilon([event], delta)


def refused(task: SiteTask, reason: str) -> Admission:
    return Admission(task.site_id, REFUSE, (reason,), {"run_id": task.run_id})


def admit(
    task: SiteTask,
    inputs: AdmissionInputs,
    rows: int | None,
    client_factory: ClientFactory | None = None,
) -> tuple[Admission, EventLog, Record]:
    """Decide on the run with the site's own policy; write the signed admission record to
    the site's chain and under its fixed key. Returns (decision, the site's event log, the
    admission record as appended to the chain: validate puts its hash in the validation
    summary, and initialize references it)."""
    site = task.site
    client = (client_factory or site_client_factory(site))()
    coordinator = Site.parse_raw(inputs.coordinator_json)
    text, where = own_policy_text(site, client)
    own: Policy | None = None
    if text is None:
        decision = refused(
            task,
            f"no own policy found at {where} (nor a ConfigMap in the site file): the site "
            f"admits no run it cannot check; upload its policy there",
        )
    else:
        try:
            own = parse_own_policy(text, where)
        except ValueError as exc:
            decision = refused(task, str(exc))
    if own is not None:
        running = (
            observe(os.environ)
            if own.admission.image_digests is not None
            else ObservedImage(None, "not checked: no image allowlist in the site's own policy")
        )
        facts = RunFacts(
            run_id=task.run_id,
            rounds=int(task.settings.rounds or 0),
            image=inputs.image,
            rule=inputs.rule,
            protection=str(getattr(task.policy.aggregation, "protection", "none")),
            dp_enabled=bool(task.settings.dp_enabled),
            planned_epsilon=planned_epsilon(task, rows, own.dp.delta),
            destinations={cls: [coordinator] for cls in SENT_TO_COORDINATOR},
            running_image=running.reference,
            running_image_source=running.source,
        )
        decision = decide(site, own, task.policy, facts)
    body = {
        "round": 0,
        "site": site.id,
        "run_id": task.run_id,
        "policy_digest": task.policy_digest,
        "own_policy": {
            "source": where,
            "digest": policy_digest(own) if own is not None else None,
            "text_sha256": sha256_hex(text) if text is not None else None,
        },
        "decision": decision.decision,
        "reasons": list(decision.reasons),
        "checked": json.loads(json.dumps(decision.checked)),
        "summary": decision.summary(),
    }
    sse = sse_for_policy(task.policy, site.id)
    private = site_secret(site.id, "SIGNING_KEY")
    log = site_log(client, site.object_store.bucket, site.id, task.run_id, private, sse)
    record = log.append("admission", body)
    store_admission(
        S3Store(client, site.object_store.bucket, sse),
        admission_key(task.run_id, site.id, task.policy_digest),
        record,
    )
    return decision, log, record
