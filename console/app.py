"""The console's routes (a Starlette application; pages rendered with Jinja2, autoescaped).

==========================================  ==============================================
``GET /``                                    health per (service, feature), firing alerts,
                                             the triage queue
``GET /incident/{fingerprint}``              one alert's incident page
``GET /alert?alertname=&service=&feature=``  the incident page of the matching alert (the
                                             link in the alert rules' ``console_url``)
``POST /samples/{id}/label``                 good/bad and a note (a plain form; idempotent)
``GET /export.jsonl``                        the labelled samples as ``llmpulse export`` writes
``GET /judge``                               judge-human agreement
``GET /samples/{id}``                        one flagged sample, linked to its session
``GET /sessions?service=&feature=``          captured sessions, newest first
``GET /sessions/{id}``                       one session's turns as a conversation, its
                                             verdict, trace links and flagged samples
``POST /api/alertmanager``                   Alertmanager webhook: bundles, forwarding
``GET /api/bundles/{fingerprint}``           the last bundle built for an alert
``GET|POST /login``, ``GET /healthz``
==========================================  ==============================================

Every sample text is autoescaped by Jinja2 and no page carries a script, so HTML, JavaScript
and prompt injections in model output are shown as the text they are.
"""

from __future__ import annotations

import contextlib
import hmac
import json
import logging
import sqlite3
import threading
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from llmpulse.console import bundle as B
from llmpulse.console.access import COOKIE, AccessMiddleware
from llmpulse.console.health import collect_health
from llmpulse.console.incident import Incident, build_incident, parse_time, scope_lead
from llmpulse.console.session_pages import session_routes
from llmpulse.console.settings import ConsoleSettings
from llmpulse.console.sources import Alert, AlertmanagerClient, PrometheusClient, SourceError
from llmpulse.console.svg import line_chart
from llmpulse.processor.quality.agreement import agreement_table
from llmpulse.processor.quality.store import LABELS, FlaggedStore, StoredSample, iter_jsonl
from llmpulse.processor.store.factory import is_url, open_store
from llmpulse.processor.store.protocols import (
    FlaggedSamples,
    SessionTranscripts,
    StateStore,
    StoreError,
    StoreReadOnly,
)
from llmpulse.processor.store.sessions import SqliteSessions

__all__ = ["Console", "create_app"]

_log = logging.getLogger(__name__)
HERE = Path(__file__).resolve().parent


def _when(t: float | None) -> str:
    return "-" if t is None else datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _num(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}g}"


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def _messages(text: str | None) -> list[tuple[str, str]]:
    """(role, text) pairs of a stored input (semconv messages JSON), or the raw text."""
    if not text:
        return []
    try:
        messages = json.loads(text)
    except ValueError:
        return [("input", text)]
    if not isinstance(messages, list):
        return [("input", text)]
    out = []
    for m in messages:
        if not isinstance(m, dict):
            out.append(("input", str(m)))
            continue
        parts = m.get("parts")
        body = (
            "\n".join(str(p.get("content", "")) for p in parts if isinstance(p, dict))
            if isinstance(parts, list)
            else str(m.get("content", ""))
        )
        out.append((str(m.get("role", "?")), body))
    return out


class Console:
    """The console's state: settings, the store, the sources and the bundles built so far."""

    def __init__(
        self,
        settings: ConsoleSettings,
        *,
        store: FlaggedSamples | None = None,
        prometheus: PrometheusClient | None = None,
        alertmanager: AlertmanagerClient | None = None,
        forward_client: httpx.Client | None = None,
    ) -> None:
        self.settings = settings
        self._store = store
        self._sessions: SessionTranscripts | None = None
        self._state: StateStore | None = None
        self._store_lock = threading.Lock()
        self.store_problem: str | None = None
        self.prometheus = prometheus or PrometheusClient(settings.prometheus_url)
        self.alertmanager = alertmanager or AlertmanagerClient(settings.alertmanager_url)
        self._forward = forward_client or httpx.Client(timeout=10.0)
        self._bundles: dict[str, tuple[Alert, dict[str, Any]]] = {}
        self._bundles_lock = threading.Lock()

    def store(self) -> FlaggedSamples | None:
        """The flagged-sample store: the PostgreSQL store the replicas share when ``db_path`` is a
        ``postgresql://`` URL (retried until it can be opened), else the SQLite file once it
        exists (the processor creates it)."""
        with self._store_lock:
            if self._store is None:
                path = self.settings.db_path
                if is_url(path):
                    try:
                        self._state = open_store(path)
                    except StoreError as exc:
                        self.store_problem = str(exc)
                        return None
                    self._store = self._state.flagged
                    self.store_problem = None
                    return self._store
                if not Path(path).exists():
                    self.store_problem = f"no quality database at {path} yet (the processor writes it)"
                    return None
                try:
                    self._store = FlaggedStore(path)
                except sqlite3.Error as exc:
                    self.store_problem = f"cannot open the quality database {path}: {exc}"
                    return None
                self.store_problem = None
            return self._store

    def sessions(self) -> SessionTranscripts | None:
        """The captured sessions, in the same store as the flagged samples; None (with
        :attr:`store_problem` set) until that store can be opened."""
        flagged = self.store()
        with self._store_lock:
            if self._sessions is None and flagged is not None:
                if self._state is not None:
                    self._sessions = self._state.sessions
                else:
                    try:
                        self._sessions = SqliteSessions(getattr(flagged, "path", self.settings.db_path))
                    except sqlite3.Error as exc:
                        self.store_problem = (
                            f"cannot read captured sessions in {self.settings.db_path}: {exc}"
                        )
            return self._sessions

    def close(self) -> None:
        if self._state is not None:
            self._state.close()
        else:
            for part in (self._sessions, self._store):
                if part is not None:
                    part.close()
        self.prometheus.close()
        self.alertmanager.close()
        self._forward.close()

    def trace_url(self, sample: StoredSample) -> str | None:
        return self.trace_link(sample.record.trace_id, sample.record.span_id)

    def trace_link(self, trace_id: bytes, span_id: bytes = b"") -> str | None:
        """The trace viewer's URL of ``trace_id`` (``trace_url_template``); None without one."""
        template = self.settings.trace_url_template
        if not template:
            return None
        return template.replace("{trace_id}", trace_id.hex()).replace("{span_id}", span_id.hex())

    def session_of(self, sample: StoredSample) -> int | None:
        """The id of the captured session ``sample`` belongs to (by its trace id), if any."""
        sessions = self.sessions()
        if sessions is None:
            return None
        try:
            return sessions.session_of_trace(sample.record.trace_id)
        except Exception as exc:  # a read view: a failing lookup drops the link, not the page
            _log.warning("event=session_lookup_failed error=%s", exc)
            return None

    # --- alerts and bundles ----------------------------------------------------------------
    def firing(self) -> tuple[list[Alert], str | None]:
        try:
            return [a for a in self.alertmanager.alerts() if a.state in ("active", "firing")], None
        except SourceError as exc:
            return [], str(exc)

    def find_alert(self, fingerprint: str) -> Alert | None:
        alerts, _ = self.firing()
        for alert in alerts:
            if alert.fingerprint == fingerprint:
                return alert
        with self._bundles_lock:
            kept = self._bundles.get(fingerprint)
        return kept[0] if kept else None

    def incident(self, alert: Alert) -> Incident:
        return build_incident(alert, self.store(), self.prometheus, window_s=self.settings.incident_window_s)

    def receive(self, payload: dict[str, Any]) -> dict[str, Any]:
        """Build the bundle of each firing alert of a webhook delivery and forward the message."""
        alerts = B.alerts_of(payload)
        bundles = []
        for alert in alerts:
            if alert.state != "firing":
                continue
            built = B.bundle_of(self.incident(alert), self.settings.base_url)
            bundles.append(built)
            with self._bundles_lock:
                self._bundles[alert.fingerprint] = (alert, built)
        result: dict[str, Any] = {"bundles": len(bundles), "forwarded": False}
        url = self.settings.forward_url
        if url and bundles:
            formatter = B.slack_message if self.settings.forward_format == "slack" else B.webhook_message
            message = formatter(payload, bundles)
            try:
                answer = self._forward.post(
                    url, content=B.encode(message), headers={"Content-Type": "application/json"}
                )
                result.update(forwarded=answer.is_success, forward_status=answer.status_code)
            except httpx.HTTPError as exc:
                _log.warning("event=forward_failed url=%s error=%s", url, exc)
                result["forward_error"] = str(exc)
        return result

    def received(self) -> list[Alert]:
        """Alerts whose bundle was built here, newest start first (resolved ones included)."""
        with self._bundles_lock:
            kept = [alert for alert, _ in self._bundles.values()]
        return sorted(kept, key=lambda a: a.starts_at, reverse=True)

    def bundle(self, fingerprint: str) -> dict[str, Any] | None:
        with self._bundles_lock:
            kept = self._bundles.get(fingerprint)
        return kept[1] if kept else None


def _environment() -> Environment:
    env = Environment(loader=FileSystemLoader(HERE / "templates"), autoescape=select_autoescape(["html"]))
    env.filters.update(when=_when, num=_num, pct=_pct, messages=_messages)
    return env


def create_app(console: Console) -> Starlette:
    """The ASGI application serving ``console``."""
    env = _environment()
    settings = console.settings

    def render(name: str, status: int = 200, **context: Any) -> HTMLResponse:
        page = env.get_template(name).render(settings=settings, **context)
        return HTMLResponse(page, status)

    def home(request: Request) -> Response:
        store = console.store()
        health = collect_health(console.prometheus, store)
        alerts, alert_problem = console.firing()
        problems = [*health.problems, *([alert_problem] if alert_problem else [])]
        if console.store_problem:
            problems.append(console.store_problem)
        return render("home.html", health=health, alerts=alerts, problems=problems, page="home")

    def incident_page(request: Request) -> Response:
        fingerprint = request.path_params["fingerprint"]
        alert = console.find_alert(fingerprint)
        if alert is None:
            return render("missing.html", 404, what=f"alert {fingerprint}", page="incident")
        incident = console.incident(alert)
        chart = None
        if incident.chart is not None:
            chart = Markup(
                line_chart(
                    incident.chart.lines,
                    start=incident.chart.start,
                    end=incident.chart.end,
                    marker=incident.chart.alert_start,
                    title=f"{incident.chart.statistic} of {incident.service} / {incident.feature}",
                )
            )
        problems = list(incident.problems)
        if console.store_problem:
            problems.append(console.store_problem)
        export_query = urlencode({"service": incident.service, "feature": incident.feature})
        return render(
            "incident.html",
            incident=incident,
            chart=chart,
            problems=problems,
            trace_url=console.trace_url,
            session_of=console.session_of,
            export_query=export_query,
            message=request.query_params.get("message"),
            lead_min=f"{scope_lead(settings.incident_window_s) / 60:.3g}",
            page="incident",
        )

    def alert_link(request: Request) -> Response:
        want = {
            k: v for k, v in request.query_params.items() if k in ("alertname", "service", "feature") and v
        }
        alerts, _ = console.firing()
        for alert in [*reversed(alerts), *console.received()]:  # firing first, newest first
            if all(alert.labels.get(k) == v for k, v in want.items()):
                return RedirectResponse(B.incident_path(alert), 303)
        return render("missing.html", 404, what="a firing alert " + urlencode(want), page="incident")

    async def label(request: Request) -> Response:
        form = await request.form()
        value = str(form.get("label", ""))
        note = str(form.get("note", "")).strip() or None
        back = str(form.get("next", "/"))
        if not back.startswith("/") or back.startswith("//"):
            back = "/"
        try:
            sample_id = int(request.path_params["sample_id"])
        except ValueError:
            return PlainTextResponse("sample id must be a number", 400)
        if value not in LABELS:
            return PlainTextResponse(f"label must be one of {', '.join(LABELS)}", 400)
        store = console.store()
        if store is None:
            return PlainTextResponse(console.store_problem or "no store", 503)
        try:
            found = store.label(sample_id, value, note)
        except (sqlite3.OperationalError, StoreReadOnly) as exc:
            return PlainTextResponse(f"the quality database is read-only here: {exc}", 409)
        if not found:
            return PlainTextResponse(f"no sample with id {sample_id}", 404)
        sep = "&" if "?" in back else "?"
        return RedirectResponse(
            f"{back}{sep}{urlencode({'message': f'sample {sample_id} labelled {value}'})}#s{sample_id}", 303
        )

    def export(request: Request) -> Response:
        store = console.store()
        if store is None:
            return PlainTextResponse(console.store_problem or "no store", 503)
        q = request.query_params
        since = parse_time(q["since"]) if q.get("since") else None
        samples = store.query(
            service=q.get("service") or None,
            feature=q.get("feature") or None,
            since=since,
            limit=None,
            label=q.get("label", "any") if q.get("label", "any") != "all" else None,
        )
        body = "".join(line + "\n" for line in iter_jsonl(list(reversed(samples))))  # oldest first
        name = "-".join(x for x in ("llmpulse-eval", q.get("service"), q.get("feature")) if x)
        return Response(
            body,
            media_type="application/x-ndjson",
            headers={"Content-Disposition": f'attachment; filename="{name}.jsonl"'},
        )

    def judge(request: Request) -> Response:
        store = console.store()
        samples = store.query(limit=None, label="any", include_audit=True) if store else []
        table = agreement_table(samples)
        problems = [console.store_problem] if console.store_problem else []
        return render("judge.html", table=table, problems=problems, page="judge")

    async def alertmanager_webhook(request: Request) -> Response:
        try:
            payload = json.loads(await request.body())
            B.alerts_of(payload)
        except ValueError as exc:
            return JSONResponse({"error": str(exc)}, 400)
        result = await run_in_threadpool(console.receive, payload)
        return JSONResponse(result)

    def bundle(request: Request) -> Response:
        found = console.bundle(request.path_params["fingerprint"])
        if found is None:
            return JSONResponse({"error": "no bundle built for that alert yet"}, 404)
        return JSONResponse(found)

    def login_form(request: Request) -> Response:
        return render("login.html", failed=False, page="login")

    async def login(request: Request) -> Response:
        form = await request.form()
        given = str(form.get("token", ""))
        if settings.token is None or hmac.compare_digest(given.encode(), settings.token.encode()):
            response = RedirectResponse("/", 303)
            if settings.token:
                response.set_cookie(COOKIE, given, httponly=True, samesite="strict")
            return response
        return render("login.html", 401, failed=True, page="login")

    def healthz(request: Request) -> Response:
        return PlainTextResponse("ok")

    routes = [
        *session_routes(console, render),
        Route("/", home),
        Route("/incident/{fingerprint}", incident_page),
        Route("/alert", alert_link),
        Route("/samples/{sample_id}/label", label, methods=["POST"]),
        Route("/export.jsonl", export),
        Route("/judge", judge),
        Route("/api/alertmanager", alertmanager_webhook, methods=["POST"]),
        Route("/api/bundles/{fingerprint}", bundle),
        Route("/login", login_form, methods=["GET"]),
        Route("/login", login, methods=["POST"]),
        Route("/healthz", healthz),
        Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
    ]
    middleware = [
        Middleware(
            AccessMiddleware,
            bind_host=settings.host,
            token=settings.token,
            auth_header=settings.auth_header,
            trusted_proxies=settings.trusted_proxies,
        )
    ]

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        console.close()

    return Starlette(routes=routes, middleware=middleware, lifespan=lifespan)
