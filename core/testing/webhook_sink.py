"""An Alertmanager webhook receiver that records every notification it gets.

Alertmanager POSTs JSON (``version: "4"``, ``status``, ``alerts[]`` with labels and
annotations) to the webhook URL. Tests and the local stack point a ``webhook_configs``
receiver at :attr:`WebhookSink.url` and read :attr:`WebhookSink.notifications`.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import signal
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Notification:
    """One webhook POST: when it arrived (``time.time()``) and its JSON payload."""

    received_at: float
    payload: dict[str, Any]

    @property
    def alertnames(self) -> list[str]:
        return [str(alert.get("labels", {}).get("alertname")) for alert in self.payload.get("alerts", [])]


class WebhookSink:
    """A threaded HTTP server on loopback collecting Alertmanager notifications."""

    def __init__(self, *, host: str = "127.0.0.1", port: int = 0, journal: Path | None = None) -> None:
        self._journal = journal
        self._lock = threading.Lock()
        self._arrived = threading.Condition(self._lock)
        self._notifications: list[Notification] = []
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # health check
                self.send_response(200)
                self.end_headers()

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                try:
                    payload = json.loads(self.rfile.read(length) or b"{}")
                except ValueError:
                    self.send_response(400)
                    self.end_headers()
                    return
                sink._record(Notification(time.time(), payload))
                self.send_response(200)
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                logger.debug("event=webhook_sink_request %s", format % args)

        self._server = ThreadingHTTPServer((host, port), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="webhook-sink", daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}/alerts"

    def start(self) -> WebhookSink:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)

    def _record(self, notification: Notification) -> None:
        with self._arrived:
            self._notifications.append(notification)
            if self._journal is not None:
                with self._journal.open("a") as fh:
                    fh.write(
                        json.dumps({"received_at": notification.received_at, **notification.payload}) + "\n"
                    )
            self._arrived.notify_all()

    @property
    def notifications(self) -> list[Notification]:
        with self._lock:
            return list(self._notifications)

    def wait_for(self, alertname: str, timeout: float) -> Notification | None:
        """Block until a notification naming ``alertname`` arrives, or ``timeout`` passes."""
        deadline = time.monotonic() + timeout
        with self._arrived:
            while True:
                for notification in self._notifications:
                    if alertname in notification.alertnames:
                        return notification
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return None
                self._arrived.wait(remaining)

    def __enter__(self) -> WebhookSink:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def main(argv: Sequence[str] | None = None) -> int:
    """Run a sink in the foreground, appending each notification as a JSON line to ``--journal``."""
    parser = argparse.ArgumentParser(prog="python -m llmpulse.testing.webhook_sink", description=main.__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9099)
    parser.add_argument("--journal", type=Path, required=True, help="JSON-lines file to append to")
    args = parser.parse_args(argv)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with WebhookSink(host=args.host, port=args.port, journal=args.journal) as sink:
        print(sink.url, flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            stop.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
