"""Admin endpoints on their own port: ``/metrics``, ``/api/status``, ``/healthz``, ``/readyz``.

They sit on a separate port (9464 by default, the conventional Prometheus-exporter port) so the
OTLP ports can require a bearer token and TLS while Prometheus scrapes without either, and so a
flood of exports cannot starve health checks of connection slots.

``/metrics`` negotiates the exposition format from ``Accept``: Prometheus asks for OpenMetrics,
which is the only format that carries exemplars.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

from llmpulse.processor.admin.guard import AdminGuard
from llmpulse.processor.http_server import Handler, Request, Response

STATUS_PATH = "/api/status"


class MetricsUnavailable(Exception):
    """Raised by the ``metrics`` callable when this scrape cannot be answered now (503); the
    message is the response body."""


class AdminHandler:
    """Routes the admin port. ``metrics`` (the ``Accept`` header -> body and content type),
    ``ready`` and ``status`` are callables owned by the service."""

    def __init__(
        self,
        metrics: Callable[[str], tuple[bytes, str]],
        *,
        status: Callable[[], dict[str, Any]],
        ready: Callable[[], bool],
        routes: Mapping[str, Handler] | None = None,
        guard: AdminGuard | None = None,
    ) -> None:
        self._metrics = metrics  # Accept header -> (body, content type)
        self._status = status
        self._ready = ready
        # path prefix -> handler (e.g. the drift engine's /api/drift), tried before the built-ins
        self._routes = tuple((routes or {}).items())
        self._guard = guard or AdminGuard(bind_host="127.0.0.1")

    async def __call__(self, request: Request) -> Response:
        """Handle one HTTP request."""
        if (refusal := self._guard.check(request)) is not None:
            return refusal
        for prefix, handler in self._routes:
            if request.path.startswith(prefix):
                return await handler(request)
        if request.method not in ("GET", "HEAD"):
            return Response(405, b"use GET\n", headers=[("Allow", "GET")])
        path = request.path
        if path == "/metrics":
            try:
                body, content_type = self._metrics(request.headers.get("accept", ""))
            except MetricsUnavailable as exc:
                return Response(503, f"{exc}\n".encode(), headers=[("Retry-After", "1")])
            return Response(200, body, content_type)
        if path == STATUS_PATH:
            body = json.dumps(self._status(), sort_keys=True, allow_nan=False).encode()
            return Response(200, body, "application/json")
        if path == "/healthz":
            return Response(200, b"ok\n")
        if path == "/readyz":
            if self._ready():
                return Response(200, b"ready\n")
            return Response(503, b"not ready\n")
        return Response(404, b"not found; try /metrics, /api/status, /healthz, /readyz\n")
