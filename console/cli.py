"""``llmpulse console``: serve the triage console (uvicorn) until interrupted."""

from __future__ import annotations

import argparse
import os
import socket
import sys
from typing import Any

from llmpulse.console.settings import (
    DEFAULT_PORT,
    FORWARD_FORMATS,
    ConsoleSettings,
    ConsoleSettingsError,
    read_token,
)
from llmpulse.contract import environment_variables as E

__all__ = ["register", "settings_from"]

DEFAULT_DB = "llmpulse-quality.db"  # the quality CLI's default


def register(subparsers: Any) -> None:
    """Add ``console`` to an argparse subparsers object."""
    env = os.environ
    parser = subparsers.add_parser(
        "console",
        help="the triage console: health, incident pages, labelling, judge agreement",
        description=(
            "Serve the triage console on loopback (default). Beyond loopback it asks for a token "
            f"(${E.LLMPULSE_CONSOLE_TOKEN} or --token-file)."
        ),
    )
    parser.add_argument("--host", default="127.0.0.1", help="bind address (default: %(default)s)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help="port (default: %(default)s)")
    parser.add_argument(
        "--db",
        default=env.get(E.LLMPULSE_QUALITY_DB, DEFAULT_DB),
        help=f"quality database the processor writes (default: ${E.LLMPULSE_QUALITY_DB} or {DEFAULT_DB})",
    )
    parser.add_argument(
        "--store-url",
        default=env.get(E.LLMPULSE_STORE_URL),
        help=f"postgresql:// URL of the store the processor replicas share; wins over --db"
        f" (default: ${E.LLMPULSE_STORE_URL})",
    )
    parser.add_argument(
        "--prometheus-url",
        default=env.get(E.LLMPULSE_PROMETHEUS_URL, "http://127.0.0.1:9090"),
        help="Prometheus (default: %(default)s)",
    )
    parser.add_argument(
        "--alertmanager-url",
        default=env.get(E.LLMPULSE_ALERTMANAGER_URL, "http://127.0.0.1:9093"),
        help="Alertmanager (default: %(default)s)",
    )
    parser.add_argument(
        "--token-file", help=f"file holding the access token (or ${E.LLMPULSE_CONSOLE_TOKEN})"
    )
    parser.add_argument(
        "--auth-header",
        metavar="NAME",
        help="reverse-proxy mode: the header a signing-in proxy names the user in, e.g. X-Forwarded-User",
    )
    parser.add_argument(
        "--trusted-proxy",
        action="append",
        default=[],
        metavar="ADDR",
        help="address or CIDR network of a proxy whose --auth-header counts (repeatable)",
    )
    parser.add_argument(
        "--external-url",
        default=env.get(E.LLMPULSE_CONSOLE_URL),
        help="the console's URL as links in notifications name it (default: http://HOST:PORT)",
    )
    parser.add_argument(
        "--trace-url-template",
        default=env.get(E.LLMPULSE_TRACE_URL_TEMPLATE),
        help="link to a sample's trace, e.g. http://127.0.0.1:16686/trace/{trace_id}",
    )
    parser.add_argument(
        "--forward-url",
        default=env.get(E.LLMPULSE_CONSOLE_FORWARD_URL),
        help="where enriched alert notifications go (default: not forwarded)",
    )
    parser.add_argument(
        "--forward-format",
        choices=FORWARD_FORMATS,
        default=env.get(E.LLMPULSE_CONSOLE_FORWARD_FORMAT, "webhook"),
        help="generic webhook JSON or a Slack message (default: %(default)s)",
    )
    parser.add_argument(
        "--incident-window",
        type=float,
        default=3600.0,
        metavar="SECONDS",
        help="how far before an alert's start its page looks (default: %(default)s)",
    )
    parser.set_defaults(func=_run)


def settings_from(args: argparse.Namespace) -> ConsoleSettings:
    """The settings of ``args`` and the environment; ConsoleSettingsError on a bad one."""
    return ConsoleSettings(
        db_path=args.store_url or args.db,
        prometheus_url=args.prometheus_url,
        alertmanager_url=args.alertmanager_url,
        host=args.host,
        port=args.port,
        token=read_token(os.environ, args.token_file),
        external_url=args.external_url,
        trace_url_template=args.trace_url_template,
        forward_url=args.forward_url,
        forward_format=args.forward_format,
        incident_window_s=args.incident_window,
        auth_header=args.auth_header,
        trusted_proxies=tuple(args.trusted_proxy),
    )


def _run(args: argparse.Namespace) -> int:
    try:
        settings = settings_from(args)
    except ConsoleSettingsError as exc:
        print(f"llmpulse console: {exc}", file=sys.stderr)
        return 2
    import logging

    import uvicorn

    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per Prometheus query is noise

    from llmpulse.console.app import Console, create_app

    family = socket.AF_INET6 if ":" in settings.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((settings.host, settings.port))
    except OSError as exc:
        sock.close()
        print(
            f"llmpulse console: cannot listen on {settings.host}:{settings.port}: {exc.strerror or exc};"
            " is another console running? choose another port with --port",
            file=sys.stderr,
        )
        return 1
    app = create_app(Console(settings))
    config = uvicorn.Config(app, log_level="warning", access_log=False)
    print(f"llmpulse console at {settings.base_url}", flush=True)
    uvicorn.Server(config).run(sockets=[sock])
    return 0
