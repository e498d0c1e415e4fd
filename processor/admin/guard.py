"""Who may use the admin port: the Host check, the token and the cross-site refusal.

The admin port serves ``/metrics`` and ``/api/status`` to anyone who can reach it (Prometheus
scrapes without credentials) and has state-changing endpoints (``POST /api/drift/refreeze``).
A browser on the same machine can reach it too, so:

* **Host**: when the admin port listens on loopback only, the ``Host`` header must name loopback
  (``localhost``, ``127.0.0.1``, ``[::1]``, with any port). A DNS-rebinding page whose name now
  points at 127.0.0.1 sends its own name and is refused (421), so it cannot read the status.
  Bound beyond loopback, the Host check takes ``admin_allowed_hosts`` when set.
* **Token**: with an auth token configured, every request that is not ``GET``/``HEAD`` needs
  ``Authorization: Bearer <token>`` (401 otherwise).
* **Cross-site**: a request that is not ``GET``/``HEAD`` is refused (403) when the browser says it
  comes from another site (``Sec-Fetch-Site: cross-site``/``same-site``, or an ``Origin`` whose
  host is not the ``Host``), and when its body is one of the types a cross-origin page may send
  without a preflight (``text/plain``, forms; 415).
"""

from __future__ import annotations

import hmac
import ipaddress
import json
from collections.abc import Iterable
from urllib.parse import urlsplit

from llmpulse.processor.http_server import Request, Response

__all__ = ["AdminGuard", "is_loopback"]

_LOOPBACK_NAMES = frozenset({"localhost", "localhost.", "ip6-localhost"})
_SIMPLE_BODY_TYPES = ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data")
_READ_METHODS = frozenset({"GET", "HEAD"})


def is_loopback(host: str) -> bool:
    """Whether ``host`` (a name or an address, no port) means this machine only."""
    host = host.strip("[]").lower()
    if host in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _host_of(value: str) -> str:
    """The host part of a ``Host`` header value (``name``, ``name:port``, ``[v6]:port``)."""
    value = value.strip().lower()
    if value.startswith("["):
        return value[1 : value.find("]")] if "]" in value else value
    return value.rsplit(":", 1)[0] if value.count(":") == 1 else value


def _refuse(status: int, message: str, headers: list[tuple[str, str]] | None = None) -> Response:
    body = json.dumps({"error": message}).encode() + b"\n"
    return Response(status, body, "application/json", headers or [])


class AdminGuard:
    """Checks one admin request; :meth:`check` returns the refusal, or None to go on."""

    def __init__(
        self, *, bind_host: str, auth_token: str | None = None, allowed_hosts: Iterable[str] = ()
    ) -> None:
        allowed = {h.strip().lower().strip("[]") for h in allowed_hosts if h.strip()}
        self._loopback_only = not allowed and is_loopback(bind_host)
        self._allowed = frozenset(allowed)
        self._expected_auth = f"Bearer {auth_token}".encode() if auth_token else None

    def check(self, request: Request) -> Response | None:
        """The refusal of ``request``, or None when it may go on."""
        host = _host_of(request.headers.get("host", ""))
        if self._loopback_only and not is_loopback(host):
            return _refuse(
                421, f"host {host!r} is not this processor's admin address; use 127.0.0.1 or localhost"
            )
        if self._allowed and host not in self._allowed:
            return _refuse(421, f"host {host!r} is not in admin_allowed_hosts")
        if request.method in _READ_METHODS:
            return None
        if self._expected_auth is not None:
            given = request.headers.get("authorization", "").encode()
            if not hmac.compare_digest(given, self._expected_auth):
                return _refuse(
                    401,
                    "this endpoint changes state: send Authorization: Bearer <the processor's auth token>",
                    [("WWW-Authenticate", 'Bearer realm="llmpulse-admin"')],
                )
        site = request.headers.get("sec-fetch-site", "").lower()
        origin = request.headers.get("origin", "")
        if site in ("cross-site", "same-site") or (origin and _origin_host(origin) != host):
            return _refuse(403, "cross-site requests may not change state on the admin port")
        content_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
        if content_type in _SIMPLE_BODY_TYPES:
            return _refuse(415, f"content type {content_type} is refused on state-changing endpoints")
        return None


def _origin_host(origin: str) -> str | None:
    if origin == "null":
        return None
    try:
        return (urlsplit(origin).hostname or "").lower() or None
    except ValueError:
        return None
