"""The console's settings, parsed once into an immutable object."""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from llmpulse.contract import environment_variables as E
from llmpulse.errors import LLMPulseError
from llmpulse.processor.admin.guard import is_loopback

__all__ = ["DEFAULT_PORT", "FORWARD_FORMATS", "ConsoleSettings", "ConsoleSettingsError", "read_token"]

DEFAULT_PORT = 9470
FORWARD_FORMATS = ("webhook", "slack")


class ConsoleSettingsError(LLMPulseError, ValueError):
    """A console setting is wrong; the message names it and says what is expected."""


@dataclass(frozen=True)
class ConsoleSettings:
    """Everything ``llmpulse console`` needs to know."""

    db_path: str
    prometheus_url: str = "http://127.0.0.1:9090"
    alertmanager_url: str = "http://127.0.0.1:9093"
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    token: str | None = None
    external_url: str | None = None
    trace_url_template: str | None = None
    forward_url: str | None = None
    forward_format: str = "webhook"
    incident_window_s: float = 3600.0
    """How far before an alert's start its incident page looks (chart, samples, what changed)."""
    auth_header: str | None = None
    """Reverse-proxy mode: the header (e.g. ``X-Forwarded-User``) in which a proxy in front of
    the console names the user it signed in; trusted only from ``trusted_proxies``."""
    trusted_proxies: tuple[str, ...] = ()
    """Addresses or networks (CIDR) of the proxies whose ``auth_header`` counts."""

    def __post_init__(self) -> None:
        if self.forward_format not in FORWARD_FORMATS:
            raise ConsoleSettingsError(
                f"forward format {self.forward_format!r}: use one of {', '.join(FORWARD_FORMATS)}"
            )
        if self.auth_header is not None and not self.trusted_proxies:
            raise ConsoleSettingsError(
                f"--auth-header {self.auth_header}: name the proxies allowed to set it with --trusted-proxy"
                " (an address or a CIDR network); from anyone else the header would be a password"
                " anybody can type"
            )
        for proxy in self.trusted_proxies:
            try:
                ipaddress.ip_network(proxy, strict=False)
            except ValueError:
                raise ConsoleSettingsError(
                    f"--trusted-proxy {proxy!r}: use an IP address or a CIDR network such as 10.0.0.0/8"
                ) from None
        if not is_loopback(self.host) and not self.token and self.auth_header is None:
            raise ConsoleSettingsError(
                f"the console binds {self.host}, beyond loopback: set {E.LLMPULSE_CONSOLE_TOKEN} or"
                f" {E.LLMPULSE_CONSOLE_TOKEN_FILE} (--token-file) so that it asks for a token, or put it"
                " behind a signing-in proxy (--auth-header with --trusted-proxy)"
            )
        if not self.incident_window_s > 0:
            raise ConsoleSettingsError(
                f"incident window {self.incident_window_s}: must be a positive number of seconds"
            )
        if self.trace_url_template is not None and "{trace_id}" not in self.trace_url_template:
            raise ConsoleSettingsError(
                f"trace URL template {self.trace_url_template!r} has no {{trace_id}} placeholder"
            )

    @property
    def base_url(self) -> str:
        """Where the console's pages are, as links in notifications should name them."""
        if self.external_url:
            return self.external_url.rstrip("/")
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"


def read_token(environ: Mapping[str, str], token_file: str | None = None) -> str | None:
    """The token from ``--token-file``, ``$LLMPULSE_CONSOLE_TOKEN_FILE`` or ``$LLMPULSE_CONSOLE_TOKEN``."""
    path = token_file or environ.get(E.LLMPULSE_CONSOLE_TOKEN_FILE)
    inline = environ.get(E.LLMPULSE_CONSOLE_TOKEN)
    if path and inline:
        raise ConsoleSettingsError(
            f"both {E.LLMPULSE_CONSOLE_TOKEN} and a token file are set: keep one of them"
        )
    if path:
        try:
            text = Path(path).read_text().strip().splitlines()
        except OSError as exc:
            raise ConsoleSettingsError(f"token file {path}: {exc.strerror or exc}") from None
        if not text or not text[0].strip():
            raise ConsoleSettingsError(f"token file {path} is empty")
        return text[0].strip()
    return inline or None
