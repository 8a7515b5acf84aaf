"""A small Kubernetes API server double over HTTPS on 127.0.0.1.

Serves just what :mod:`rustyray.discovery.kubernetes` reads, with the real API's behaviour:

- bearer-token check (401 with a ``Status`` body otherwise);
- lists of EndpointSlices (discovery.k8s.io/v1), Endpoints and Pods (core/v1) with ``labelSelector``
  (``k=v``, ``k==v``, ``k!=v``, ``k in (a,b)``, ``k notin (a,b)``, ``k``, ``!k``) and ``fieldSelector``
  (``metadata.name=``) really applied; GET of one Endpoints and one StatefulSet; 404 otherwise;
- ``?watch=1`` streams ``{"type","object"}`` JSON lines after ``resourceVersion``, ending after
  ``timeoutSeconds``; a resourceVersion older than :meth:`compact` point yields an ERROR 410 event;
- ``serve_endpoint_slices=False`` answers 404 for discovery.k8s.io, like a cluster older than 1.21.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
import re
import ssl
from pathlib import Path
from typing import Any

from aiohttp import web

from tests.servers._aiohttp_server import LoopbackServer
from tests.servers.tls import make_self_signed_cert

KINDS = {
    "endpointslices": ("EndpointSliceList", "discovery.k8s.io/v1"),
    "endpoints": ("EndpointsList", "v1"),
    "pods": ("PodList", "v1"),
    "statefulsets": ("StatefulSetList", "apps/v1"),
}

_SET_TERM = re.compile(r"^\s*([A-Za-z0-9./_-]+)\s+(in|notin)\s+\(([^)]*)\)\s*$")


def _split_selector(selector: str) -> list[str]:
    """Split on commas that are not inside parentheses."""
    terms, depth, current = [], 0, ""
    for ch in selector:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            terms.append(current)
            current = ""
        else:
            current += ch
    if current.strip():
        terms.append(current)
    return [t.strip() for t in terms if t.strip()]


def label_selector_matches(selector: str, labels: dict[str, str]) -> bool:
    """Kubernetes label-selector semantics (set-based and equality-based); ValueError when malformed."""
    for term in _split_selector(selector):
        set_match = _SET_TERM.match(term)
        if set_match:
            key, op, raw = set_match.groups()
            values = {v.strip() for v in raw.split(",") if v.strip()}
            if op == "in" and labels.get(key) not in values:
                return False
            if op == "notin" and key in labels and labels[key] in values:
                return False
        elif "!=" in term:
            key, value = (p.strip() for p in term.split("!=", 1))
            if labels.get(key) == value:
                return False
        elif "=" in term:
            key, value = (p.strip() for p in term.replace("==", "=").split("=", 1))
            if labels.get(key) != value:
                return False
        elif term.startswith("!"):
            if term[1:].strip() in labels:
                return False
        elif re.fullmatch(r"[A-Za-z0-9./_-]+", term):
            if term not in labels:
                return False
        else:
            raise ValueError(f"unparseable selector term {term!r}")
    return True


def field_selector_matches(selector: str, obj: dict[str, Any]) -> bool:
    for term in _split_selector(selector):
        key, value = (p.strip() for p in term.replace("==", "=").split("=", 1))
        meta = obj.get("metadata", {})
        actual = {"metadata.name": meta.get("name"), "metadata.namespace": meta.get("namespace")}.get(key)
        if actual != value:
            return False
    return True


class K8sDouble:
    """In-memory objects per (kind, namespace, name) with a global resourceVersion and an event log."""

    def __init__(self, token: str, cert_dir: Path, *, serve_endpoint_slices: bool = True) -> None:
        self.token = token
        self.serve_endpoint_slices = serve_endpoint_slices
        self.cert_path, key_path = make_self_signed_cert(cert_dir)
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(self.cert_path, key_path)
        self.objects: dict[tuple[str, str, str], dict[str, Any]] = {}
        self.log: list[tuple[int, str, str, str, dict[str, Any]]] = []  # (rv, kind, ns, type, object)
        self.rv = 100
        self.compacted_rv = 0
        self._generation = 0
        #: Number of watch requests answered with 410 Gone.
        self.gone_count = 0
        #: (path, query) of every authorised request.
        self.requests: list[tuple[str, dict[str, str]]] = []
        self._changed = asyncio.Condition()
        app = web.Application(middlewares=[self._auth])
        app.router.add_get(
            "/apis/discovery.k8s.io/v1/namespaces/{ns}/endpointslices", self._collection("endpointslices")
        )
        app.router.add_get("/api/v1/namespaces/{ns}/endpoints", self._collection("endpoints"))
        app.router.add_get("/api/v1/namespaces/{ns}/endpoints/{name}", self._single("endpoints"))
        app.router.add_get("/api/v1/namespaces/{ns}/pods", self._collection("pods"))
        app.router.add_get("/apis/apps/v1/namespaces/{ns}/statefulsets/{name}", self._single("statefulsets"))
        self._server = LoopbackServer(app, ssl_context=ctx)

    async def start(self) -> str:
        return await self._server.start()

    @property
    def base_url(self) -> str:
        return self._server.base_url

    async def stop(self) -> None:
        await self._server.stop()

    # -- mutation (tests call these) ------------------------------------------------------------
    async def apply(self, kind: str, namespace: str, obj: dict[str, Any]) -> dict[str, Any]:
        """Create or replace an object; records ADDED/MODIFIED and wakes watchers."""
        assert kind in KINDS
        obj = copy.deepcopy(obj)
        meta = obj.setdefault("metadata", {})
        meta["namespace"] = namespace
        self.rv += 1
        meta["resourceVersion"] = str(self.rv)
        key = (kind, namespace, meta["name"])
        event = "MODIFIED" if key in self.objects else "ADDED"
        self.objects[key] = obj
        self.log.append((self.rv, kind, namespace, event, copy.deepcopy(obj)))
        await self._notify()
        return obj

    async def delete(self, kind: str, namespace: str, name: str) -> None:
        """Remove an object; records DELETED and wakes watchers."""
        obj = self.objects.pop((kind, namespace, name))
        self.rv += 1
        obj["metadata"]["resourceVersion"] = str(self.rv)
        self.log.append((self.rv, kind, namespace, "DELETED", obj))
        await self._notify()

    def compact(self) -> None:
        """Forget history up to now: watches from older resourceVersions get 410 Gone."""
        self.compacted_rv = self.rv

    async def lose_history(self, kind: str, namespace: str, obj: dict[str, Any]) -> None:
        """Change ``obj`` with no watch event, compact, and end every open watch (like an API server
        restart after etcd compaction): reconnecting watchers get 410 and must list again to see it."""
        obj = copy.deepcopy(obj)
        obj.setdefault("metadata", {})["namespace"] = namespace
        self.rv += 1
        obj["metadata"]["resourceVersion"] = str(self.rv)
        self.objects[(kind, namespace, obj["metadata"]["name"])] = obj
        self.compacted_rv = self.rv
        self._generation += 1
        await self._notify()

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    # -- HTTP -----------------------------------------------------------------------------------
    @staticmethod
    def _status(code: int, reason: str, message: str) -> web.Response:
        body = {
            "kind": "Status",
            "apiVersion": "v1",
            "status": "Failure",
            "message": message,
            "reason": reason,
            "code": code,
        }
        return web.json_response(body, status=code)

    @web.middleware
    async def _auth(self, request: web.Request, handler: Any) -> web.StreamResponse:
        if request.headers.get("Authorization") != f"Bearer {self.token}":
            return self._status(401, "Unauthorized", "Unauthorized")
        if not self.serve_endpoint_slices and request.path.startswith("/apis/discovery.k8s.io/"):
            return self._status(404, "NotFound", "the server could not find the requested resource")
        self.requests.append((request.path, dict(request.query)))
        return await handler(request)

    def _matching(self, kind: str, ns: str, query: Any) -> list[dict[str, Any]]:
        label_sel = query.get("labelSelector", "")
        field_sel = query.get("fieldSelector", "")
        out = []
        for (k, n, _), obj in sorted(self.objects.items()):
            if k != kind or n != ns:
                continue
            labels = obj.get("metadata", {}).get("labels") or {}
            if label_sel and not label_selector_matches(label_sel, labels):
                continue
            if field_sel and not field_selector_matches(field_sel, obj):
                continue
            out.append(obj)
        return out

    def _collection(self, kind: str) -> Any:
        async def handler(request: web.Request) -> web.StreamResponse:
            ns = request.match_info["ns"]
            query = request.query
            try:
                for sel in ("labelSelector", "fieldSelector"):
                    if query.get(sel):
                        self._matching(kind, ns, {sel: query[sel]})
            except ValueError as exc:
                return self._status(400, "BadRequest", str(exc))
            if query.get("watch") in ("1", "true"):
                return await self._watch(request, kind, ns)
            list_kind, api_version = KINDS[kind]
            return web.json_response(
                {
                    "kind": list_kind,
                    "apiVersion": api_version,
                    "metadata": {"resourceVersion": str(self.rv)},
                    "items": self._matching(kind, ns, query),
                }
            )

        return handler

    def _single(self, kind: str) -> Any:
        async def handler(request: web.Request) -> web.Response:
            obj = self.objects.get((kind, request.match_info["ns"], request.match_info["name"]))
            if obj is None:
                return self._status(404, "NotFound", f'{kind} "{request.match_info["name"]}" not found')
            return web.json_response(obj)

        return handler

    async def _watch(self, request: web.Request, kind: str, ns: str) -> web.StreamResponse:
        since = int(request.query.get("resourceVersion") or self.rv)
        timeout = float(request.query.get("timeoutSeconds", "300"))
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        await response.prepare(request)
        if since < self.compacted_rv:
            self.gone_count += 1
            gone = {
                "kind": "Status",
                "status": "Failure",
                "reason": "Expired",
                "code": 410,
                "message": f"too old resource version: {since} ({self.compacted_rv})",
            }
            await response.write((json.dumps({"type": "ERROR", "object": gone}) + "\n").encode())
            return response
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        label_sel = request.query.get("labelSelector", "")
        field_sel = request.query.get("fieldSelector", "")
        generation = self._generation
        while True:
            for rv, k, n, event, obj in self.log:
                if rv <= since or k != kind or n != ns:
                    continue
                since = rv
                labels = obj.get("metadata", {}).get("labels") or {}
                if label_sel and not label_selector_matches(label_sel, labels):
                    continue
                if field_sel and not field_selector_matches(field_sel, obj):
                    continue
                await response.write((json.dumps({"type": event, "object": obj}) + "\n").encode())
            since = max(since, self.rv)
            remaining = deadline - loop.time()
            if remaining <= 0 or generation != self._generation:
                return response
            async with self._changed:
                if self.rv <= since:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._changed.wait(), remaining)


def endpoint_slice(
    name: str, service: str, endpoints: list[tuple[str, str, bool | None]], port: int = 7000, port_name: str = "swim"
) -> dict[str, Any]:
    """An EndpointSlice for ``service`` with (pod, ip, ready) endpoints."""
    return {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {"name": name, "labels": {"kubernetes.io/service-name": service}},
        "addressType": "IPv4",
        "ports": [{"name": port_name, "port": port, "protocol": "TCP"}],
        "endpoints": [
            {
                "addresses": [ip],
                "conditions": {} if ready is None else {"ready": ready},
                "targetRef": {"kind": "Pod", "name": pod},
                "zone": "zone-a",
            }
            for pod, ip, ready in endpoints
        ],
    }


def pod(name: str, ip: str | None, labels: dict[str, str], ready: bool) -> dict[str, Any]:
    """A Pod with a Ready condition and (when ``ip``) a podIP."""
    status: dict[str, Any] = {"conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}
    if ip:
        status["podIP"] = ip
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": labels},
        "spec": {"containers": [{"name": "node", "ports": [{"name": "swim", "containerPort": 7000}]}]},
        "status": status,
    }
