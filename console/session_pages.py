"""The console's session pages: a flagged sample on its own page (linked to its session), the
captured sessions, and one session's turns as a conversation with its verdict, the trace link
of each turn and the flagged samples of its traces.

Every text is autoescaped by Jinja2, as on the other pages.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

if TYPE_CHECKING:
    from llmpulse.console.app import Console

__all__ = ["session_routes"]

Render = Callable[..., HTMLResponse]


def _int(text: str) -> int | None:
    try:
        return int(text)
    except ValueError:
        return None


def session_routes(console: Console, render: Render) -> list[Route]:
    """``/samples/{id}``, ``/sessions`` and ``/sessions/{id}`` of ``console``."""

    def problems() -> list[str]:
        return [console.store_problem] if console.store_problem else []

    def sample_page(request: Request) -> Response:
        sample_id = _int(request.path_params["sample_id"])
        store = console.store()
        sample = store.get(sample_id) if store is not None and sample_id is not None else None
        if sample is None:
            what = f"flagged sample {request.path_params['sample_id']}"
            return render("missing.html", 404, what=what, problems=problems(), page="sessions")
        return render(
            "sample.html",
            s=sample,
            session_id=console.session_of(sample),
            trace_url=console.trace_url,
            message=request.query_params.get("message"),
            problems=problems(),
            page="sessions",
        )

    def sessions_page(request: Request) -> Response:
        q = request.query_params
        service, feature = q.get("service") or None, q.get("feature") or None
        verdict = q.get("verdict") if q.get("verdict") in ("bad", "good", "none") else None
        log = console.sessions()
        found = (
            log.sessions(service=service, feature=feature, verdict=verdict, limit=100)
            if log is not None
            else []
        )
        return render(
            "sessions.html",
            sessions=found,
            service=service,
            feature=feature,
            verdict=verdict,
            problems=problems(),
            page="sessions",
        )

    def session_page(request: Request) -> Response:
        session_id = _int(request.path_params["session_id"])
        log = console.sessions()
        found = log.session(session_id) if log is not None and session_id is not None else None
        if found is None or log is None:
            what = f"captured session {request.path_params['session_id']}"
            return render("missing.html", 404, what=what, problems=problems(), page="sessions")
        flagged = [(i, ", ".join(json.loads(sources))) for i, sources in log.flagged_in_session(found.id)]
        turns: list[dict[str, Any]] = [
            {"n": n, "turn": t, "trace_url": console.trace_link(t.trace_id)}
            for n, t in found.record.numbered()
        ]
        return render(
            "session.html",
            s=found,
            turns=turns,
            flagged=flagged,
            problems=problems(),
            page="sessions",
        )

    return [
        Route("/samples/{sample_id}", sample_page),
        Route("/sessions", sessions_page),
        Route("/sessions/{session_id}", session_page),
    ]
