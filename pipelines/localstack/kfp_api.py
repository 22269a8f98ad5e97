"""A small in-memory KFP v2beta1 REST server on 127.0.0.1, for tests without a cluster.

It implements the endpoints that kfp 2.13's `kfp.Client` calls for uploading pipelines and
versions, experiments and recurring runs (plus healthz). Every JSON request body is parsed
strictly with the `kfp_server_api` models (unknown fields are refused with 400), and every
request is recorded in `KfpApiServer.requests` so tests can assert on what the client sent.
Filters: `EQUALS` predicates on `display_name` (what the client uses to look names up).
"""

from __future__ import annotations

import email.parser
import email.policy
import itertools
import json
import threading
import types
import urllib.parse
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import kfp_server_api
import yaml

_API = "/apis/v2beta1"
_EQUALS = {1, "EQUALS"}
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@dataclass
class Recorded:
    """One request as the server understood it."""

    method: str
    path: str
    query: dict[str, str]
    body: Any = None  # a kfp_server_api model for JSON bodies, None otherwise
    upload: bytes | None = None  # the `uploadfile` part of a multipart upload


class ApiError(Exception):
    """Answered as a google.rpc.Status JSON body with the given HTTP status."""

    def __init__(self, http_status: int, message: str) -> None:
        super().__init__(message)
        self.http_status = http_status


_GRPC_CODE = {400: 3, 404: 5, 409: 6}


def _strict_check(data: Any, klass: str, where: str) -> None:
    """Refuse JSON keys the model does not define (the generated client ignores them)."""
    if data is None:
        return
    if klass.startswith("list["):
        for i, item in enumerate(data):
            _strict_check(item, klass[5:-1], f"{where}[{i}]")
        return
    model = getattr(kfp_server_api.models, klass, None)
    if model is None or not getattr(model, "openapi_types", None):
        return  # primitives, 'object', enums
    if not isinstance(data, dict):
        raise ApiError(400, f"{where}: expected an object for {klass}")
    by_json = {json_name: attr for attr, json_name in model.attribute_map.items()}
    unknown = sorted(set(data) - set(by_json))
    if unknown:
        raise ApiError(400, f"{where}: unknown field(s) {unknown} for {klass}")
    for key, value in data.items():
        _strict_check(value, model.openapi_types[by_json[key]], f"{where}.{key}")


@dataclass
class KfpState:
    """Server-side objects, keyed by id; ids are sequential strings."""

    pipelines: dict[str, kfp_server_api.V2beta1Pipeline] = field(default_factory=dict)
    versions: dict[str, kfp_server_api.V2beta1PipelineVersion] = field(default_factory=dict)
    experiments: dict[str, kfp_server_api.V2beta1Experiment] = field(default_factory=dict)
    recurring_runs: dict[str, kfp_server_api.V2beta1RecurringRun] = field(default_factory=dict)
    _ids: itertools.count = field(default_factory=lambda: itertools.count(1))

    def new_id(self, kind: str) -> str:
        return f"{kind}-{next(self._ids):04d}"


class KfpApiServer:
    """Context manager: `with KfpApiServer() as kfp: kfp.Client(host=kfp.url)`."""

    def __init__(self) -> None:
        self.api = kfp_server_api.ApiClient()
        self.state = KfpState()
        self.requests: list[Recorded] = []
        # "METHOD /apis/v2beta1/..." -> HTTP status to answer once (tests of failure paths)
        self.fail_once: dict[str, int] = {}
        self.lock = threading.Lock()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------------------
    @property
    def url(self) -> str:
        assert self._httpd is not None, "server not started"
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    def start(self) -> KfpApiServer:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server._handle(self, "GET")

            def do_POST(self) -> None:
                server._handle(self, "POST")

            def do_DELETE(self) -> None:
                server._handle(self, "DELETE")

            def log_message(self, format: str, *args: Any) -> None:  # quiet
                pass

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def __enter__(self) -> KfpApiServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- queries for tests -----------------------------------------------------------------
    def calls(self, method: str, path_prefix: str) -> list[Recorded]:
        """Recorded requests with this method whose path starts with `/apis/v2beta1<prefix>`."""
        return [
            r for r in self.requests if r.method == method and r.path.startswith(_API + path_prefix)
        ]

    # -- plumbing --------------------------------------------------------------------------
    def _parse(self, raw: bytes, klass: str) -> Any:
        try:
            data = json.loads(raw or b"{}")
        except json.JSONDecodeError as exc:
            raise ApiError(400, f"body is not JSON: {exc}") from exc
        _strict_check(data, klass, "body")
        try:
            return self.api.deserialize(types.SimpleNamespace(data=json.dumps(data)), klass)
        except ValueError as exc:
            raise ApiError(400, f"body is not a valid {klass}: {exc}") from exc

    def _handle(self, h: BaseHTTPRequestHandler, method: str) -> None:
        url = urllib.parse.urlsplit(h.path)
        query = dict(urllib.parse.parse_qsl(url.query, keep_blank_values=True))
        length = int(h.headers.get("Content-Length") or 0)
        raw = h.rfile.read(length) if length else b""
        record = Recorded(method, url.path, query)
        try:
            with self.lock:
                self.requests.append(record)
                injected = self.fail_once.pop(f"{method} {url.path}", None)
                if injected is not None:
                    raise ApiError(injected, f"injected failure of {method} {url.path}")
                status, payload = self._route(method, url.path, query, raw, h.headers, record)
        except ApiError as exc:
            status = exc.http_status
            payload = {"code": _GRPC_CODE.get(status, 2), "message": str(exc), "details": []}
        body = json.dumps(self.api.sanitize_for_serialization(payload)).encode()
        h.send_response(status)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        h.wfile.write(body)

    def _route(
        self, method: str, path: str, query: dict[str, str], raw: bytes, headers: Any, rec: Recorded
    ) -> tuple[int, Any]:
        if not path.startswith(_API + "/"):
            raise ApiError(404, f"no such endpoint {method} {path}")
        parts = path[len(_API) + 1 :].split("/")
        s = self.state
        match method, parts:
            case "GET", ["healthz"]:
                return 200, kfp_server_api.V2beta1GetHealthzResponse(multi_user=False)
            # pipelines ----------------------------------------------------------------------
            case "POST", ["pipelines", "upload"]:
                rec.upload = _multipart_file(raw, headers)
                pipeline = self._create_pipeline(query.get("name", ""), query.get("description"))
                self._create_version(
                    pipeline.pipeline_id, pipeline.display_name, query.get("description"), rec
                )
                return 200, pipeline
            case "POST", ["pipelines", "upload_version"]:
                rec.upload = _multipart_file(raw, headers)
                pid = query.get("pipelineid", "")
                if pid not in s.pipelines:
                    raise ApiError(404, f"pipeline {pid!r} not found")
                return 200, self._create_version(
                    pid, query.get("name", ""), query.get("description"), rec
                )
            case "POST", ["pipelines"]:
                rec.body = self._parse(raw, "V2beta1Pipeline")
                return 200, self._create_pipeline(rec.body.display_name, rec.body.description)
            case "GET", ["pipelines"]:
                items = _filtered(list(s.pipelines.values()), query)
                page, token = _page(items, query)
                return 200, kfp_server_api.V2beta1ListPipelinesResponse(
                    pipelines=page or None, next_page_token=token, total_size=len(items)
                )
            case "GET", ["pipelines", pid]:
                return 200, _get(s.pipelines, pid, "pipeline")
            case "GET", ["pipelines", pid, "versions"]:
                _get(s.pipelines, pid, "pipeline")
                versions = [v for v in s.versions.values() if v.pipeline_id == pid]
                items = _filtered(versions, query)
                page, token = _page(items, query)
                return 200, kfp_server_api.V2beta1ListPipelineVersionsResponse(
                    pipeline_versions=page or None, next_page_token=token, total_size=len(items)
                )
            case "GET", ["pipelines", pid, "versions", vid]:
                version = _get(s.versions, vid, "pipeline version")
                if version.pipeline_id != pid:
                    raise ApiError(404, f"pipeline version {vid!r} not in pipeline {pid!r}")
                return 200, version
            # experiments --------------------------------------------------------------------
            case "POST", ["experiments"]:
                exp = self._parse(raw, "V2beta1Experiment")
                rec.body = exp
                if not exp.display_name:
                    raise ApiError(400, "experiment display_name is empty")
                if _filtered(list(s.experiments.values()), _eq_query(exp.display_name)):
                    raise ApiError(409, f"experiment {exp.display_name!r} already exists")
                exp.experiment_id = s.new_id("experiment")
                exp.created_at = datetime.now(UTC)
                exp.storage_state = "AVAILABLE"
                s.experiments[exp.experiment_id] = exp
                return 200, exp
            case "GET", ["experiments"]:
                items = _filtered(list(s.experiments.values()), query)
                page, token = _page(items, query)
                return 200, kfp_server_api.V2beta1ListExperimentsResponse(
                    experiments=page or None, next_page_token=token, total_size=len(items)
                )
            case "GET", ["experiments", eid]:
                return 200, _get(s.experiments, eid, "experiment")
            # recurring runs -----------------------------------------------------------------
            case "POST", ["recurringruns"]:
                run = self._parse(raw, "V2beta1RecurringRun")
                rec.body = run
                self._check_recurring_run(run)
                run.recurring_run_id = s.new_id("recurring-run")
                run.created_at = run.updated_at = datetime.now(UTC)
                run.status = "ENABLED" if run.mode == "ENABLE" else "DISABLED"
                s.recurring_runs[run.recurring_run_id] = run
                return 200, run
            case "GET", ["recurringruns"]:
                runs = list(s.recurring_runs.values())
                if query.get("experiment_id"):
                    runs = [r for r in runs if r.experiment_id == query["experiment_id"]]
                items = _filtered(runs, query)
                page, token = _page(items, query)
                return 200, kfp_server_api.V2beta1ListRecurringRunsResponse(
                    recurring_runs=page or None, next_page_token=token, total_size=len(items)
                )
            case "GET", ["recurringruns", rid]:
                return 200, _get(s.recurring_runs, rid, "recurring run")
            case "POST", ["recurringruns", action] if action.endswith((":enable", ":disable")):
                rid, _, verb = action.partition(":")
                run = _get(s.recurring_runs, rid, "recurring run")
                run.mode = "ENABLE" if verb == "enable" else "DISABLE"
                run.status = "ENABLED" if verb == "enable" else "DISABLED"
                return 200, {}
            case "DELETE", ["recurringruns", rid]:
                _get(s.recurring_runs, rid, "recurring run")
                del s.recurring_runs[rid]
                return 200, {}
        raise ApiError(404, f"no such endpoint {method} {path}")

    def _create_pipeline(self, name: str, description: str | None) -> Any:
        if not name:
            raise ApiError(400, "pipeline display_name is empty")
        if _filtered(list(self.state.pipelines.values()), _eq_query(name)):
            raise ApiError(409, f"pipeline {name!r} already exists")
        pipeline = kfp_server_api.V2beta1Pipeline(
            pipeline_id=self.state.new_id("pipeline"),
            display_name=name,
            description=description,
            created_at=datetime.now(UTC),
            namespace="",
        )
        self.state.pipelines[pipeline.pipeline_id] = pipeline
        return pipeline

    def _create_version(
        self, pipeline_id: str, name: str, description: str | None, rec: Recorded
    ) -> Any:
        if not name:
            raise ApiError(400, "pipeline version name is empty")
        same = [
            v
            for v in self.state.versions.values()
            if v.pipeline_id == pipeline_id and v.display_name == name
        ]
        if same:
            raise ApiError(409, f"pipeline version {name!r} already exists in {pipeline_id}")
        try:
            docs = list(yaml.load_all(rec.upload or b"", Loader=_LOADER))
        except yaml.YAMLError as exc:
            raise ApiError(400, f"uploaded file is not YAML: {exc}") from exc
        if not docs or not isinstance(docs[0], dict) or "root" not in docs[0]:
            raise ApiError(400, "uploaded file is not a KFP pipeline spec (no 'root')")
        spec = docs[0] if len(docs) == 1 else {"pipeline_spec": docs[0], "platform_spec": docs[1]}
        version = kfp_server_api.V2beta1PipelineVersion(
            pipeline_id=pipeline_id,
            pipeline_version_id=self.state.new_id("version"),
            display_name=name,
            description=description,
            created_at=datetime.now(UTC),
            pipeline_spec=spec,
        )
        self.state.versions[version.pipeline_version_id] = version
        return version

    def _check_recurring_run(self, run: Any) -> None:
        if not run.display_name:
            raise ApiError(400, "recurring run display_name is empty")
        if run.experiment_id not in self.state.experiments:
            raise ApiError(404, f"experiment {run.experiment_id!r} not found")
        ref = run.pipeline_version_reference
        if ref is None and run.pipeline_spec is None:
            raise ApiError(400, "recurring run needs pipeline_version_reference or pipeline_spec")
        if ref is not None:
            version = _get(self.state.versions, ref.pipeline_version_id or "", "pipeline version")
            if version.pipeline_id != ref.pipeline_id:
                raise ApiError(400, "pipeline_version_reference: version not in pipeline")
        trigger = run.trigger
        if trigger is None or (trigger.cron_schedule is None and trigger.periodic_schedule is None):
            raise ApiError(400, "recurring run needs a trigger")
        if int(run.max_concurrency or 0) not in range(1, 11):
            raise ApiError(400, "max_concurrency must be between 1 and 10")


def _eq_query(name: str) -> dict[str, str]:
    pred = {"operation": "EQUALS", "key": "display_name", "stringValue": name}
    return {"filter": json.dumps({"predicates": [pred]})}


def _filtered(items: list[Any], query: dict[str, str]) -> list[Any]:
    """Apply EQUALS predicates of a JSON filter (the only kind kfp's client sends)."""
    if not query.get("filter"):
        return items
    try:
        predicates = json.loads(query["filter"]).get("predicates", [])
    except (json.JSONDecodeError, AttributeError) as exc:
        raise ApiError(400, f"filter is not a JSON Filter: {exc}") from exc
    for pred in predicates:
        if pred.get("operation") not in _EQUALS:
            raise ApiError(400, f"filter operation {pred.get('operation')!r} not implemented")
        key, value = pred.get("key"), pred.get("stringValue", pred.get("string_value"))
        items = [i for i in items if getattr(i, key, None) == value]
    return items


def _page(items: list[Any], query: dict[str, str]) -> tuple[list[Any], str | None]:
    start = int(query.get("page_token") or 0)
    size = int(query.get("page_size") or 0) or len(items) or 1
    end = start + size
    return items[start:end], (str(end) if end < len(items) else None)


def _get(table: dict[str, Any], key: str, kind: str) -> Any:
    if key not in table:
        raise ApiError(404, f"{kind} {key!r} not found")
    return table[key]


def _multipart_file(raw: bytes, headers: Any) -> bytes:
    """The `uploadfile` part of a multipart/form-data body."""
    ctype = headers.get("Content-Type", "")
    if not ctype.startswith("multipart/form-data"):
        raise ApiError(400, f"upload must be multipart/form-data, got {ctype!r}")
    msg = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        b"Content-Type: " + ctype.encode() + b"\r\n\r\n" + raw
    )
    for part in msg.iter_parts():
        if part.get_param("name", header="content-disposition") == "uploadfile":
            return part.get_payload(decode=True)
    raise ApiError(400, "multipart upload has no 'uploadfile' part")
