"""A small in-memory Kubernetes API server on 127.0.0.1, for `fedpipe doctor` tests.

It answers the few read endpoints `doctor` calls (nodes, a namespace, a Secret, a ConfigMap,
NetworkPolicies)
with objects held as the official `kubernetes.client` models: objects are loaded from plain
dicts (manifests) through the client's own deserializer, refusing fields the models do not
define, and answers are serialized with the client's `sanitize_for_serialization`, so the
client parses exactly what a real server would send for these models. Requests need
`Authorization: Bearer <token>`; label selectors support `k=v`, `k==v`, `k!=v`, `k`, `!k`.
Every request is recorded (method, path, query; never headers).
"""

from __future__ import annotations

import base64
import json
import threading
import types
import urllib.parse
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from kubernetes import client

_MODELS = {
    ("v1", "Node"): "V1Node",
    ("v1", "Namespace"): "V1Namespace",
    ("v1", "Secret"): "V1Secret",
    ("v1", "ConfigMap"): "V1ConfigMap",
    ("networking.k8s.io/v1", "NetworkPolicy"): "V1NetworkPolicy",
}


class KubeApiError(Exception):
    """Answered as a v1 Status with this HTTP code."""

    def __init__(self, code: int, reason: str, message: str) -> None:
        super().__init__(message)
        self.code, self.reason = code, reason


def _strict_check(data: Any, klass: str, where: str) -> None:
    """Refuse keys a model does not define (the generated client would silently drop them)."""
    if data is None:
        return
    if klass.startswith("list["):
        for i, item in enumerate(data):
            _strict_check(item, klass[5:-1], f"{where}[{i}]")
        return
    if klass.startswith("dict("):
        return
    model = getattr(client.models, klass, None)
    if model is None or not getattr(model, "openapi_types", None):
        return
    if not isinstance(data, dict):
        raise ValueError(f"{where}: expected an object for {klass}")
    by_json = {json_name: attr for attr, json_name in model.attribute_map.items()}
    unknown = sorted(set(data) - set(by_json))
    if unknown:
        raise ValueError(f"{where}: unknown field(s) {unknown} for {klass}")
    for key, value in data.items():
        _strict_check(value, model.openapi_types[by_json[key]], f"{where}.{key}")


def parse_label_selector(text: str) -> list[tuple[str, str, str | None]]:
    """[(key, op, value)] with op one of '=', '!=', 'exists', '!exists'; ValueError otherwise."""
    out: list[tuple[str, str, str | None]] = []
    for term in filter(None, (t.strip() for t in text.split(","))):
        if " in " in term or " notin " in term or "(" in term:
            raise ValueError(f"set-based selector {term!r} is not supported by the stand-in")
        if "!=" in term:
            key, value = term.split("!=", 1)
            out.append((key.strip(), "!=", value.strip()))
        elif "=" in term:
            key, value = term.replace("==", "=").split("=", 1)
            out.append((key.strip(), "=", value.strip()))
        elif term.startswith("!"):
            out.append((term[1:].strip(), "!exists", None))
        else:
            out.append((term, "exists", None))
    return out


def _selected(labels: dict[str, str] | None, selector: list[tuple[str, str, str | None]]) -> bool:
    labels = labels or {}
    for key, op, value in selector:
        if op == "=" and labels.get(key) != value:
            return False
        if op == "!=" and labels.get(key) == value:
            return False
        if op == "exists" and key not in labels:
            return False
        if op == "!exists" and key in labels:
            return False
    return True


@dataclass
class KubeRequest:
    method: str
    path: str
    query: dict[str, str]


@dataclass
class KubeState:
    nodes: dict[str, client.V1Node] = field(default_factory=dict)
    namespaces: dict[str, client.V1Namespace] = field(default_factory=dict)
    secrets: dict[tuple[str, str], client.V1Secret] = field(default_factory=dict)
    config_maps: dict[tuple[str, str], client.V1ConfigMap] = field(default_factory=dict)
    network_policies: dict[tuple[str, str], client.V1NetworkPolicy] = field(default_factory=dict)


class KubeApiServer:
    """Context manager: `with KubeApiServer(token) as kube: ...`; `kube.url` is the server."""

    def __init__(self, token: str) -> None:
        self.token = token
        self.api = client.ApiClient()
        self.state = KubeState()
        self.requests: list[KubeRequest] = []
        self.lock = threading.Lock()
        self._httpd: ThreadingHTTPServer | None = None

    # -- objects ---------------------------------------------------------------------------
    def add(self, obj: dict[str, Any]) -> Any:
        """Store a manifest dict as its client model (Secret stringData → base64 data)."""
        obj = json.loads(json.dumps(obj))
        klass = _MODELS.get((obj.get("apiVersion"), obj.get("kind")))
        if klass is None:
            raise ValueError(f"the stand-in holds no {obj.get('apiVersion')} {obj.get('kind')}")
        if klass == "V1Secret" and "stringData" in obj:
            data = obj.setdefault("data", {})
            for key, value in obj.pop("stringData").items():
                data[key] = base64.b64encode(value.encode()).decode()
        _strict_check(obj, klass, obj["kind"])
        model = self.api.deserialize(types.SimpleNamespace(data=json.dumps(obj)), klass)
        meta = model.metadata
        with self.lock:
            if klass == "V1Node":
                self.state.nodes[meta.name] = model
            elif klass == "V1Namespace":
                self.state.namespaces[meta.name] = model
            elif klass == "V1Secret":
                self.state.secrets[(meta.namespace, meta.name)] = model
            elif klass == "V1ConfigMap":
                self.state.config_maps[(meta.namespace, meta.name)] = model
            else:
                self.state.network_policies[(meta.namespace, meta.name)] = model
        return model

    # -- lifecycle -------------------------------------------------------------------------
    @property
    def url(self) -> str:
        assert self._httpd is not None, "server not started"
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    def start(self) -> KubeApiServer:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server._handle(self, "GET")

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._httpd.serve_forever, args=(0.05,), daemon=True).start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def __enter__(self) -> KubeApiServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- plumbing --------------------------------------------------------------------------
    def _handle(self, h: BaseHTTPRequestHandler, method: str) -> None:
        url = urllib.parse.urlsplit(h.path)
        query = dict(urllib.parse.parse_qsl(url.query, keep_blank_values=True))
        with self.lock:
            self.requests.append(KubeRequest(method, url.path, query))
        try:
            if h.headers.get("Authorization") != f"Bearer {self.token}":
                raise KubeApiError(401, "Unauthorized", "Unauthorized")
            with self.lock:
                payload = self._route(url.path.strip("/").split("/"), query)
            status = 200
        except KubeApiError as exc:
            status = exc.code
            payload = client.V1Status(
                api_version="v1", kind="Status", status="Failure", message=str(exc),
                reason=exc.reason, code=exc.code,
            )  # fmt: skip
        body = json.dumps(self.api.sanitize_for_serialization(payload)).encode()
        h.send_response(status)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        h.wfile.write(body)

    def _selector(self, query: dict[str, str]) -> list[tuple[str, str, str | None]]:
        try:
            return parse_label_selector(query.get("labelSelector", ""))
        except ValueError as exc:
            raise KubeApiError(400, "BadRequest", str(exc)) from exc

    def _route(self, parts: list[str], query: dict[str, str]) -> Any:
        s = self.state
        match parts:
            case ["api", "v1", "nodes"]:
                sel = self._selector(query)
                items = [n for _, n in sorted(s.nodes.items()) if _selected(n.metadata.labels, sel)]
                return client.V1NodeList(
                    api_version="v1", kind="NodeList", items=items, metadata=client.V1ListMeta()
                )
            case ["api", "v1", "namespaces", ns]:
                if ns not in s.namespaces:
                    raise KubeApiError(404, "NotFound", f'namespaces "{ns}" not found')
                return s.namespaces[ns]
            case ["api", "v1", "namespaces", ns, "secrets", name]:
                if (ns, name) not in s.secrets:
                    raise KubeApiError(404, "NotFound", f'secrets "{name}" not found')
                return s.secrets[(ns, name)]
            case ["api", "v1", "namespaces", ns, "configmaps", name]:
                if (ns, name) not in s.config_maps:
                    raise KubeApiError(404, "NotFound", f'configmaps "{name}" not found')
                return s.config_maps[(ns, name)]
            case ["apis", "networking.k8s.io", "v1", "namespaces", ns, "networkpolicies"]:
                sel = self._selector(query)
                items = [
                    p
                    for (pns, _), p in sorted(s.network_policies.items())
                    if pns == ns and _selected(p.metadata.labels, sel)
                ]
                return client.V1NetworkPolicyList(
                    api_version="networking.k8s.io/v1", kind="NetworkPolicyList", items=items,
                    metadata=client.V1ListMeta(),
                )  # fmt: skip
        raise KubeApiError(404, "NotFound", f"the stand-in has no endpoint /{'/'.join(parts)}")
