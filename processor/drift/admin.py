"""Drift endpoints for the processor's admin port: status and re-freezing the reference.

Routes (JSON in and out; a float that is not finite is written as ``null``)::

    GET  /api/drift                                  every feature's drift status
    GET  /api/drift?feature=F[&service=S]            one feature (404 if never seen; 409 when several
                                                     services have it and none is named)
    POST /api/drift/refreeze?feature=F               the next reference_size samples become the reference
    POST /api/drift/refreeze?feature=F&from=current  freeze the current window now (409 if too small)

:class:`DriftAdmin` answers requests whose path starts with :data:`DRIFT_PATH_PREFIX`; the admin
handler forwards those to it before its own GET-only routing.
"""

from __future__ import annotations

import asyncio
import json
import math
from typing import Any
from urllib.parse import parse_qs

from llmpulse.processor.drift.engine import AmbiguousFeature, DriftEngine, UnknownFeature
from llmpulse.processor.http_server import Request, Response

__all__ = ["DRIFT_PATH_PREFIX", "DRIFT_STATUS_PATH", "REFREEZE_PATH", "DriftAdmin", "to_json"]

DRIFT_PATH_PREFIX = "/api/drift"
DRIFT_STATUS_PATH = "/api/drift"
REFREEZE_PATH = "/api/drift/refreeze"


def _clean(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    return value


def to_json(document: dict[str, Any]) -> bytes:
    """Strict JSON with NaN and infinities written as null."""
    return json.dumps(_clean(document), sort_keys=True, allow_nan=False).encode()


def _answer(status: int, document: dict[str, Any]) -> Response:
    return Response(status, to_json(document), "application/json")


class DriftAdmin:
    """Handles ``/api/drift*`` requests against one :class:`DriftEngine`."""

    def __init__(self, engine: DriftEngine) -> None:
        self._engine = engine

    async def __call__(self, request: Request) -> Response:
        """Handle one request under :data:`DRIFT_PATH_PREFIX`."""
        query = {k: v[-1] for k, v in parse_qs(request.query).items()}
        feature = query.get("feature")
        service = query.get("service") or None
        scope = f"feature {feature!r}" + (f" of service {service!r}" if service else "")
        if request.path == DRIFT_STATUS_PATH:
            if request.method not in ("GET", "HEAD"):
                return Response(405, b"use GET\n", headers=[("Allow", "GET")])
            try:
                return _answer(200, await asyncio.to_thread(self._engine.status, feature, service=service))
            except UnknownFeature:
                return _answer(404, {"error": f"no drift samples seen for {scope}"})
            except AmbiguousFeature as exc:
                return _answer(409, {"error": f"{exc}: add &service=NAME", "services": exc.services})
        if request.path == REFREEZE_PATH:
            if request.method != "POST":
                return Response(405, b"use POST\n", headers=[("Allow", "POST")])
            if not feature:
                return _answer(400, {"error": "give the feature to re-freeze: ?feature=NAME"})
            source = query.get("from", "next")
            if source not in ("next", "current"):
                return _answer(400, {"error": f"from must be 'next' or 'current', got {source!r}"})
            try:
                status = await asyncio.to_thread(
                    self._engine.refreeze, feature, service=service, from_current=source == "current"
                )
            except UnknownFeature:
                return _answer(404, {"error": f"no drift samples seen for {scope}"})
            except AmbiguousFeature as exc:
                return _answer(409, {"error": f"{exc}: add &service=NAME", "services": exc.services})
            except ValueError as exc:
                return _answer(409, {"error": str(exc)})
            return _answer(200, status)
        return _answer(404, {"error": f"no drift route {request.path}; try {DRIFT_STATUS_PATH}"})
