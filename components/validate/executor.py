"""`validate` executor: read the site's training table, run the GX suite, write summary.json.

A contract whose scaling is fitted on the site's own rows (`site_zscore`) with DP on fails the
task (`ContractError`), like the budget pre-flight: nobody trains. Bad data never crashes the task: an unreadable URI, an empty file, missing columns, wrong
dtypes, NaN labels... give `passed: false` with a reason naming the site and the failing
checks (the site abstains). Only a task wired to the wrong site/dataset raises
(`TaskInputError`), because that is a pipeline bug, not the site's data.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from components.common.artifact_files import SUMMARY_FILE, write_json
from components.common.secrets import MissingSecretError
from components.common.site_task import SiteTask
from components.datasets.features import DataError
from components.datasets.io import ClientFactory, read_site_table, site_client_factory
from components.datasets.site import check_own_bucket
from components.domain.contract import check_private_scaling
from components.privacy.dp_off import require_dp_allowed
from components.validate.site_admission import AdmissionInputs
from components.validate.suite import abstention, column_set_notes, run_suite, summarize


def _validate_site(
    task: SiteTask, client_factory: ClientFactory | None, reveal_row_count: bool
) -> tuple[dict[str, Any], int | None]:
    """(summary, training rows read — None when the table could not be read).

    `reveal_row_count` False (policy `export.reveal_num_examples: false`): `row_count` is null,
    so the summary does not disclose the training sample count the manifest hides."""
    data, site_id = task.site_data(), task.site_id
    factory = client_factory or site_client_factory(data.site)
    try:
        check_own_bucket(data.site, data.train_uri)
        frame = read_site_table(data.train_uri, factory, site_id, data.contract)
    except DataError as exc:
        return abstention(site_id, f"data check {exc.check!r} failed: {exc.detail}"), None
    except MissingSecretError as exc:
        return abstention(site_id, f"cannot read its data: {exc}"), None
    try:
        outcomes = run_suite(data.contract, frame)
    except Exception as exc:  # a GX-internal failure must not crash the round
        return abstention(site_id, f"validation engine error ({type(exc).__name__})"), len(frame)
    notes = column_set_notes(data.contract, list(frame.columns))
    rows = len(frame) if reveal_row_count else None
    return summarize(site_id, rows, outcomes, notes), len(frame)


def _he_context_missing(task: SiteTask, client_factory: ClientFactory | None) -> str | None:
    """Protection he: None when the site's secret CKKS context is in its bucket and usable,
    else why not (`components.he.keys.site_context`'s message: the object and the setup)."""
    from components.common.create_only import STORE_ERRORS
    from components.he.ckks import HeError
    from components.he.keys import site_context

    try:
        site_context(task.site, (client_factory or site_client_factory(task.site))())
    except HeError as exc:
        return str(exc)
    except MissingSecretError as exc:
        return f"cannot read its CKKS context: {exc}"
    except STORE_ERRORS as exc:
        code = getattr(exc, "code", None) or type(exc).__name__
        return f"cannot read its CKKS context from its bucket ({code})"
    return None


def write_summary(folder: str | Path, summary: dict[str, Any]) -> Path:
    """Create the artifact folder and write `summary.json`; returns its path."""
    return write_json(folder, SUMMARY_FILE, summary)


def run(
    task: SiteTask,
    *,
    summary: str,
    admission: AdmissionInputs | None = None,
    client_factory: ClientFactory | None = None,
) -> dict[str, Any]:
    """Validate the site's data; write `<summary>/summary.json` (components/CONTRACT.md).

    `row_count` is null when the policy hides sample counts (`export.reveal_num_examples`).
    `dp_enabled` false under a policy without `dp.allow_dp_off` raises `DpPolicyError`
    before anything is read (validate is the run's one DP-off gate before anyone trains).
    With the run's `rounds` and DP settings in `task.settings` (the pipeline passes them), a
    site whose data passed is also checked against its privacy ledger: a run that would take
    it past its lifetime budget makes the site abstain (`passed: false`, the reason naming
    the budget; `components.validate.budget`): its train abstains in every round and charges
    nothing, the others go on, and initialize stops the run only when the quorum cannot hold.
    `admission` (what the component passes: image, rule, coordinator): the run is first checked
    against the site's own copy of its policy (`components.validate.site_admission`); a
    refusal makes the summary fail with every reason (the site abstains) and the signed
    admission record is written either way; the validation outcome goes to the site's chain,
    and the summary's `audit` names both records by hash (`{"admission", "validation"}`).
    Under `aggregation.protection: he` a site whose secret CKKS context is missing or unusable
    abstains too, with the reason (the object and `fedpipe he-setup`), before it trains.
    Under `secagg` a site whose data passed advertises its SecAgg+ round keys for every round
    of the run (`components.secagg_stages.executor.advertise`); one that cannot abstains.
    `client_factory` (tests) replaces the minio client built from the site spec and secrets.
    Returns the summary written.
    """
    contract = task.site_data().contract  # validate reads data: the task carries its contract
    settings = task.settings
    if settings.dp_enabled is not None:
        # DP off is decided here, before the barrier every train waits behind: one refusing
        # site fails the run before any site trains (components.privacy.dp_off)
        require_dp_allowed(bool(settings.dp_enabled), {task.site_id: task.policy})
    if settings.dp_enabled:
        # a scaler fitted on the site's rows is outside the DP accounting: refuse the run
        # before anyone trains (ContractError names the contract and the fix)
        check_private_scaling(contract, True)
    reveal = bool(task.policy.export.reveal_num_examples)
    body, rows = _validate_site(task, client_factory, reveal)
    log = None
    admitted = None
    if admission is not None:
        from components.validate.site_admission import admit

        decision, log, admitted = admit(task, admission, rows, client_factory)
        if not decision.accepted:
            body = abstention(task.site_id, decision.summary(), body.get("row_count"))
    if settings.rounds is not None and settings.dp_enabled and body.get("passed") and rows:
        from components.validate.budget import budget_abstention

        why = budget_abstention(
            task,
            num_examples=rows,
            rounds=settings.rounds,
            batch_size=int(settings.batch_size or 0),
            local_epochs=int(settings.local_epochs or 0),
            noise_multiplier=float(settings.noise_multiplier or 0.0),
            client_factory=client_factory,
        )
        if why is not None:  # the data passed, the budget does not: the site abstains
            body = {**body, "passed": False, "reason": f"site {task.site_id} abstains: {why}"}
    if body.get("passed") and task.policy.aggregation.protection == "he":
        why = _he_context_missing(task, client_factory)
        if why is not None:  # it could train but not encrypt: abstain before spending budget
            body = {**body, "passed": False, "reason": f"site {task.site_id} abstains: {why}"}
    if body.get("passed") and task.policy.aggregation.protection == "secagg":
        # SecAgg+ step 1, folded into validate: fresh round keys for every round of the run,
        # advertised signed with the site key (the state stays in the site's bucket); a site
        # that cannot advertise abstains (components/secagg_stages/executor.py)
        why = _advertise_round_keys(task, client_factory)
        if why is not None:
            body = {**body, "passed": False, "reason": f"site {task.site_id} abstains: {why}"}
    if log is not None and admitted is not None:
        validated = log.append(
            "validation",
            {
                "round": 0,
                "passed": bool(body.get("passed")),
                "reason": body.get("reason"),
                "summary": "data passed its contract"
                if body.get("passed")
                else f"abstains: {body.get('reason')}",
            },
        )
        # the records behind this summary, by hash: initialize references them in the
        # coordinator's chain (the chains cross-check; `fedpipe audit verify` checks them)
        body = {**body, "audit": {"admission": admitted.hash, "validation": validated.hash}}
    write_summary(summary, body)
    return body


def _advertise_round_keys(task: SiteTask, client_factory: ClientFactory | None) -> str | None:
    """Advertise the SecAgg+ round keys; None, or why the site cannot (it then abstains)."""
    from components.common.create_only import STORE_ERRORS
    from components.common.secrets import MissingSecretError
    from components.secagg.errors import SecAggError
    from components.secagg_stages.executor import advertise

    try:
        advertise(task, client_factory)
    except (SecAggError, MissingSecretError, *STORE_ERRORS) as exc:
        return f"cannot advertise its SecAgg+ round keys: {exc}"
    return None
