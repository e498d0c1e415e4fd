"""Who may use the console: the Host check, the token and the cross-site refusal.

The same rules as the processor's admin port (:mod:`llmpulse.processor.admin.guard`), for
pages a browser opens:

* **Host**: bound to loopback, the ``Host`` header must name loopback, so a DNS-rebinding page
  cannot read the console (421).
* **Token**: with a token configured (required beyond loopback), every request needs it, as
  ``Authorization: Bearer <token>`` or the ``llmpulse_console`` cookie that ``POST /login`` sets
  (an HttpOnly, SameSite=Strict cookie); pages redirect to ``/login``, the API answers 401.
* **Reverse proxy** (``auth_header``): a request from one of the trusted proxies that names a
  user in that header is let in as that user (``request.state.user``); a request from another
  address is refused (403), whatever headers it carries. The token, when there is one, still
  works beside it (Alertmanager posting straight to the webhook).
* **Cross-site**: a POST that the browser says comes from another site (``Sec-Fetch-Site``, or
  an ``Origin`` whose host is not the ``Host``) is refused (403), so a page elsewhere cannot
  label samples through a visitor's browser.
"""

from __future__ import annotations

import hmac
import ipaddress
from collections.abc import Sequence
from urllib.parse import urlsplit

from starlette.middleware.base import BaseHTTPMiddleware, RequestResponseEndpoint
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.types import ASGIApp

from llmpulse.processor.admin.guard import is_loopback

__all__ = ["COOKIE", "OPEN_PATHS", "AccessMiddleware", "host_of"]

COOKIE = "llmpulse_console"
OPEN_PATHS = frozenset({"/login", "/healthz", "/static/console.css"})


def host_of(value: str) -> str:
    """The host part of a ``Host`` header value (``name``, ``name:port``, ``[v6]:port``)."""
    value = value.strip().lower()
    if value.startswith("["):
        return value[1 : value.find("]")] if "]" in value else value
    return value.rsplit(":", 1)[0] if value.count(":") == 1 else value


class AccessMiddleware(BaseHTTPMiddleware):
    """Refuses what the module docstring says; lets the rest through."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        bind_host: str,
        token: str | None,
        auth_header: str | None = None,
        trusted_proxies: Sequence[str] = (),
    ) -> None:
        super().__init__(app)
        self._loopback_only = is_loopback(bind_host)
        self._token = token
        self._auth_header = auth_header
        self._proxies = tuple(ipaddress.ip_network(p, strict=False) for p in trusted_proxies)

    def _from_proxy(self, request: Request) -> bool:
        peer = request.client.host if request.client else ""
        try:
            address = ipaddress.ip_address(peer)
        except ValueError:
            return False
        return any(address in network for network in self._proxies)

    def authorised(self, request: Request) -> bool:
        if self._auth_header is not None:
            user = request.headers.get(self._auth_header, "").strip()
            if user and self._from_proxy(request):
                request.state.user = user
                return True
            if self._token is None:
                return False
        if self._token is None:
            return True
        expected = self._token.encode()
        header = request.headers.get("authorization", "")
        if header.startswith("Bearer ") and hmac.compare_digest(header[7:].encode(), expected):
            return True
        return hmac.compare_digest(request.cookies.get(COOKIE, "").encode(), expected)

    async def dispatch(self, request: Request, call_next: RequestResponseEndpoint) -> Response:
        host = host_of(request.headers.get("host", ""))
        if self._loopback_only and not is_loopback(host):
            return PlainTextResponse(f"host {host!r} is not this console's address; use 127.0.0.1", 421)
        if request.method not in ("GET", "HEAD"):
            site = request.headers.get("sec-fetch-site", "").lower()
            origin = request.headers.get("origin", "")
            if origin == "null":  # an opaque origin (sandboxed frame, no-referrer page): only the
                cross = site != "same-origin"  # browser's own Sec-Fetch-Site can vouch for it
            else:
                cross = bool(origin) and (urlsplit(origin).hostname or "").lower() != host
            if site in ("cross-site", "same-site") or cross:
                return PlainTextResponse("cross-site requests may not change the console's state", 403)
        if request.url.path in OPEN_PATHS:
            return await call_next(request)
        if self._auth_header is not None and self._token is None and not self._from_proxy(request):
            return PlainTextResponse("this console is reached through its signing-in proxy only", 403)
        if not self.authorised(request):
            if self._auth_header is not None and self._token is None:
                return PlainTextResponse(f"the proxy named no user in {self._auth_header}", 401)
            if request.url.path.startswith("/api/"):
                return PlainTextResponse(
                    "send Authorization: Bearer <the console's token>",
                    401,
                    headers={"WWW-Authenticate": 'Bearer realm="llmpulse-console"'},
                )
            return RedirectResponse("/login", 303)
        return await call_next(request)
