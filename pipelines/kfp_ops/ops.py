"""KFP host operations over kfp 2.13's `kfp.Client`: idempotent upload, recurring runs.

I/O lives here; the decisions (digest, cron, parameters) are the pure modules beside it.
Errors the user can act on are `KfpOpsError` with a message naming pipeline/version/host.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipelines.kfp_ops.cron import validate_cron
from pipelines.kfp_ops.digest import (
    PipelineParameter,
    normalize_version_ref,
    parameters_of,
    pipeline_info_of,
    version_description,
    version_name_for,
)
from pipelines.kfp_ops.params import parse_params

_PAGE = 100
DEFAULT_EXPERIMENT = "fedpipe"
MAX_CONCURRENCY_LIMIT = 10  # KFP refuses recurring runs above 10 concurrent runs


class KfpOpsError(Exception):
    """A KFP operation that cannot proceed; the message says what to do."""


def connect(
    host: str | None,
    *,
    existing_token: str | None = None,
    cookies: str | None = None,
    namespace: str = "kubeflow",
) -> Any:
    """A `kfp.Client` for `host` (None: `$KF_PIPELINES_ENDPOINT` or the kube config).

    Authentication follows kfp's usual settings: an explicit token or cookies, else
    `~/.config/kfp/context.json` and the `KF_PIPELINES_*` environment variables.
    """
    import kfp

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # "only works with KFP v2.0.0-beta.2+"
        return kfp.Client(
            host=host, existing_token=existing_token, cookies=cookies, namespace=namespace
        )


def _eq_filter(name: str) -> str:
    return json.dumps(
        {"predicates": [{"operation": "EQUALS", "key": "display_name", "stringValue": name}]}
    )


def _pages(call: Any, attr: str, **kwargs: Any) -> Iterator[Any]:
    token = ""
    while True:
        response = call(page_token=token, page_size=_PAGE, **kwargs)
        yield from getattr(response, attr) or []
        token = response.next_page_token or ""
        if not token:
            return


def find_pipeline_id(client: Any, name: str) -> str | None:
    """The id of the pipeline whose display name is `name`, or None."""
    try:
        return client.get_pipeline_id(name)
    except ValueError as exc:  # several pipelines with this name
        raise KfpOpsError(f"pipeline {name!r}: {exc}") from exc


def find_version(client: Any, pipeline_id: str, name: str) -> Any | None:
    """The pipeline version with display name exactly `name`, or None."""
    found = list(
        _pages(
            client.list_pipeline_versions,
            "pipeline_versions",
            pipeline_id=pipeline_id,
            filter=_eq_filter(name),
        )
    )
    return found[0] if found else None


def resolve_version(client: Any, pipeline_id: str, pipeline_name: str, ref: str) -> Any:
    """The version named `ref`, or the only one whose name starts with `ref` (a digest prefix;
    `sha256:<hex>` and bare hex are read as the version name `sha256-<hex>`)."""
    ref = normalize_version_ref(ref)
    exact = find_version(client, pipeline_id, ref)
    if exact is not None:
        return exact
    versions = list(
        _pages(client.list_pipeline_versions, "pipeline_versions", pipeline_id=pipeline_id)
    )
    matches = [v for v in versions if (v.display_name or "").startswith(ref)]
    if len(matches) == 1:
        return matches[0]
    names = ", ".join(sorted(v.display_name for v in versions)) or "none"
    if not matches:
        raise KfpOpsError(
            f"pipeline {pipeline_name!r} has no version {ref!r} (versions: {names});"
            " upload it first with `fedpipe upload`"
        )
    raise KfpOpsError(f"version {ref!r} of {pipeline_name!r} is ambiguous: {names}")


@dataclass(frozen=True)
class UploadResult:
    """What `upload` found or created on the host."""

    pipeline_id: str
    pipeline_name: str
    version_id: str
    version_name: str  # sha256-<hex>: the pipeline digest (`version_name_for`)
    created_pipeline: bool
    created_version: bool


def upload(client: Any, package_path: Path, pipeline_name: str | None = None) -> UploadResult:
    """Upload `package_path` as pipeline `pipeline_name` with a version named by its digest.

    The version is looked up first: the same digest twice is a no-op. A new pipeline is created
    empty (so its only versions are digest-named ones) and the YAML uploaded as its version.
    """
    import kfp_server_api

    try:
        text = package_path.read_text(encoding="utf-8")
    except OSError as exc:
        raise KfpOpsError(f"cannot read pipeline package {package_path}: {exc}") from exc
    info = pipeline_info_of(text, str(package_path))
    name = pipeline_name or info.name
    if not name.strip():
        raise KfpOpsError(f"{package_path}: no pipeline name; pass --pipeline-name")

    created_pipeline = False
    pipeline_id = find_pipeline_id(client, name)
    if pipeline_id is None:
        summary = info.description.strip().splitlines()
        body = kfp_server_api.V2beta1Pipeline(
            display_name=name,
            description=summary[0] if summary else f"fedpipe pipeline {name}",
        )
        pipeline_id = client.pipelines.pipeline_service_create_pipeline(body=body).pipeline_id
        created_pipeline = True

    version_name = version_name_for(info.digest)
    existing = find_version(client, pipeline_id, version_name)
    if existing is not None:
        return UploadResult(
            pipeline_id, name, existing.pipeline_version_id, version_name, created_pipeline, False
        )
    try:
        version = client.upload_pipeline_version(
            str(package_path),
            pipeline_version_name=version_name,
            pipeline_id=pipeline_id,
            description=version_description(info),
        )
    except kfp_server_api.ApiException as exc:
        if exc.status != 409:
            raise
        # uploaded concurrently by someone else: the same digest, so the same content
        version = find_version(client, pipeline_id, version_name)
        if version is None:
            raise
        return UploadResult(
            pipeline_id, name, version.pipeline_version_id, version_name, created_pipeline, False
        )
    return UploadResult(
        pipeline_id, name, version.pipeline_version_id, version_name, created_pipeline, True
    )


@dataclass(frozen=True)
class ScheduleRequest:
    """A recurring run of one pipeline version. Defaults: one run at a time, no catch-up."""

    pipeline_name: str
    version: str  # digest (sha256:<hex> or sha256-<hex> or bare hex), or a unique prefix
    cron: str  # 6 fields, seconds first
    max_concurrency: int = 1
    catchup: bool = False
    experiment: str = DEFAULT_EXPERIMENT
    params: Sequence[str] = field(default_factory=tuple)  # "key=value"
    name: str | None = None  # recurring run display name; default "<pipeline>-recurring"

    @property
    def run_name(self) -> str:
        return self.name or f"{self.pipeline_name}-recurring"


@dataclass(frozen=True)
class ScheduleResult:
    """The recurring run created, and the ones it replaced (same name, same experiment)."""

    recurring_run_id: str
    run_name: str
    experiment_id: str
    pipeline_id: str
    version_id: str
    version_name: str
    parameters: dict[str, Any]
    replaced: tuple[str, ...]


def _spec_parameters(version: Any) -> tuple[PipelineParameter, ...] | None:
    spec = version.pipeline_spec
    if not isinstance(spec, dict):
        return None
    if "pipeline_spec" in spec:  # a spec with a platform spec comes wrapped
        spec = spec["pipeline_spec"]
    return parameters_of(spec) if "root" in spec else None


def recurring_parameters(
    pairs: Sequence[str], parameters: Sequence[PipelineParameter] | None
) -> dict[str, Any]:
    """`--param` values plus `resume=True`: every scheduled run continues the last global model."""
    if parameters is not None and "resume" not in {p.name for p in parameters}:
        raise KfpOpsError(
            "the pipeline version has no 'resume' parameter, so a recurring run could not"
            " continue from the latest global model; recompile with `fedpipe compile`"
        )
    params = parse_params(pairs, parameters)
    if params.get("resume", True) is not True:
        raise KfpOpsError("--param resume: a recurring run always resumes (resume=true)")
    params["resume"] = True
    return params


def schedule(client: Any, req: ScheduleRequest) -> ScheduleResult:
    """Create the recurring run, replacing one of the same name in the experiment.

    KFP's v2beta1 API cannot update a recurring run, so an existing one is disabled, the new
    one created, then the old one deleted (re-enabled if the creation fails).
    """
    cron = validate_cron(req.cron)
    if not 1 <= req.max_concurrency <= MAX_CONCURRENCY_LIMIT:
        raise KfpOpsError(
            f"--max-concurrency {req.max_concurrency}: must be 1..{MAX_CONCURRENCY_LIMIT}"
        )
    pipeline_id = find_pipeline_id(client, req.pipeline_name)
    if pipeline_id is None:
        raise KfpOpsError(
            f"no pipeline named {req.pipeline_name!r} on the host; run `fedpipe upload` first"
        )
    version = resolve_version(client, pipeline_id, req.pipeline_name, req.version)
    version = client.get_pipeline_version(pipeline_id, version.pipeline_version_id)
    params = recurring_parameters(req.params, _spec_parameters(version))

    experiment = client.create_experiment(req.experiment)  # gets it when it exists
    old = list(
        _pages(
            client.list_recurring_runs,
            "recurring_runs",
            experiment_id=experiment.experiment_id,
            filter=_eq_filter(req.run_name),
        )
    )
    for run in old:
        client.disable_recurring_run(run.recurring_run_id)
    try:
        created = client.create_recurring_run(
            experiment_id=experiment.experiment_id,
            job_name=req.run_name,
            description=(
                f"fedpipe: {req.pipeline_name} version {version.display_name} on cron '{cron}';"
                " each run resumes from the latest global model"
            ),
            cron_expression=cron,
            max_concurrency=req.max_concurrency,
            no_catchup=not req.catchup,
            params=params,
            pipeline_id=pipeline_id,
            version_id=version.pipeline_version_id,
            enabled=True,
        )
    except Exception:
        for run in old:
            client.enable_recurring_run(run.recurring_run_id)
        raise
    for run in old:
        client.delete_recurring_run(run.recurring_run_id)
    return ScheduleResult(
        recurring_run_id=created.recurring_run_id,
        run_name=req.run_name,
        experiment_id=experiment.experiment_id,
        pipeline_id=pipeline_id,
        version_id=version.pipeline_version_id,
        version_name=version.display_name,
        parameters=params,
        replaced=tuple(r.recurring_run_id for r in old),
    )
