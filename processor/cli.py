"""``llmpulse serve`` and ``llmpulse status``. The only processor module that touches the process:
signals, environment, stdout/stderr, the log format, the GIL's switch interval and the garbage
collector."""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import logging
import os
import signal
import sys
from collections.abc import Mapping
from typing import Any

from llmpulse.processor.admin.status_client import (
    DEFAULT_URL,
    StatusError,
    fetch_status,
    merge_status,
    render_table,
)
from llmpulse.processor.engines import build_engines, load_engine_config
from llmpulse.processor.metrics.windows import WINDOWS
from llmpulse.processor.service import ProcessorService, StartupError
from llmpulse.processor.settings import ENV_CONFIG, ConfigError, add_arguments, resolve

SERVE_DESCRIPTION = """\
Run the llmpulse processor: receive OTLP traces (gRPC on --grpc-port, HTTP POST /v1/traces on
--http-port), derive Prometheus metrics from LLM, step and feedback spans, and serve
/metrics (OpenMetrics with exemplars when asked), /api/status, /healthz and /readyz on
--admin-port. Every setting can also come from an environment variable or from the
[processor] table of a TOML file given with --config; flags win over the environment, which
wins over the file. SIGINT/SIGTERM drain the queue (within --drain-timeout) and stop.

The same file's [quality], [canary] and [drift] tables configure the quality engine (cheap
checks, LLM judge, SPC charts, user signals, flagged samples), canary probes and input-drift
detection (docs/quality.md, docs/drift.md). The judge's endpoint, model and key can also come
from LLMPULSE_JUDGE_BASE_URL, LLMPULSE_JUDGE_MODEL and LLMPULSE_JUDGE_API_KEY.
"""


GC_THRESHOLDS = (20_000, 10, 10)
"""The cyclic collector's thresholds while serving (CPython's default is 700, 10, 10)."""
SWITCH_INTERVAL = 0.0005
"""Seconds a thread may hold the GIL while another waits for it (CPython's default is 0.005)."""


def tune_interpreter() -> None:
    """Keep the gRPC intake thread's waits for the interpreter short while serving.

    The gRPC server runs on a thread of its own and takes in one new call per turn of its
    loop; each turn that found nothing to do waits for the GIL, which the worker's thread
    gives up only every switch interval: 5 ms by default, which capped the intake near 200
    calls a second under overload. 0.5 ms lifts that cap tenfold; the cost is more frequent
    switches only while both threads have work.

    The cyclic garbage collector's stop-the-world passes are kept short and rare. The hot
    paths build no reference cycles (a test keeps it so), so the collector finds next to
    nothing; yet with the default thresholds a processor under overload spent about
    5 s of every 25 in it (passes over everything alive, the full ones up to 0.7 s, holding
    every thread, the gRPC intake's too). What start-up built (modules, engines' models) is
    frozen out of its reach, and a young collection waits for 20,000 new container objects
    instead of 700, so that a request's short-lived records are freed by reference counting
    before the collector ever looks at them. Process-wide: only the entry point calls it.
    """
    sys.setswitchinterval(SWITCH_INTERVAL)
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message (``event=... key=value`` text)."""

    def format(self, record: logging.LogRecord) -> str:
        """Render ``record`` as one JSON line."""
        entry: dict[str, Any] = {
            "ts": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry)


def register(subparsers: Any) -> None:
    """Add the ``serve`` and ``status`` subcommands."""
    serve = subparsers.add_parser(
        "serve",
        help="run the processor (OTLP in, Prometheus metrics out)",
        description=SERVE_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_arguments(serve)
    serve.set_defaults(func=run_serve)

    status = subparsers.add_parser(
        "status", help="show per-service, per-feature rolling windows of a running processor"
    )
    status.add_argument(
        "--url",
        action="append",
        help="admin URL of a processor; repeat it for replicas, shown as one (default: the "
        f"processors `llmpulse up` started, else {DEFAULT_URL})",
    )
    status.add_argument(
        "--window",
        default="5m",
        choices=[name for name, _ in WINDOWS],
        help="rolling window to show (default: %(default)s)",
    )
    status.add_argument("--service", help="show only this service (its service.name)")
    status.add_argument("--json", action="store_true", help="print the raw /api/status document")
    status.set_defaults(func=run_status)


def run_serve(args: argparse.Namespace) -> int:
    """Entry point of ``llmpulse serve``."""
    try:
        settings = resolve(args)
        engine_tables = load_engine_config(args.config or os.environ.get(ENV_CONFIG))
    except ConfigError as exc:
        print(f"llmpulse serve: {exc}", file=sys.stderr)
        return 2
    if settings.log_format == "json":
        for handler in logging.getLogger().handlers:
            handler.setFormatter(JsonFormatter())
    if getattr(args, "auth_token", None) is not None:
        logging.getLogger("llmpulse.processor").warning(
            "event=auth_token_on_command_line effect=readable_by_local_users_in_/proc/<pid>/cmdline "
            "hint=use LLMPULSE_AUTH_TOKEN or --auth-token-file"
        )
    try:
        return asyncio.run(_serve(settings, engine_tables))
    except (ConfigError, StartupError) as exc:
        print(f"llmpulse serve: {exc}", file=sys.stderr)
        return 1


async def _serve(settings: Any, engine_tables: Mapping[str, Mapping[str, Any]]) -> int:
    # The service starts the engines before it binds its ports and stops them after the drain.
    service = ProcessorService(
        settings,
        extensions=build_engines(engine_tables, os.environ, max_label_values=settings.max_label_values),
    )
    await service.startup()
    tune_interpreter()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    try:
        await stop.wait()
    finally:
        await service.shutdown()
    return 0


def run_status(args: argparse.Namespace) -> int:
    """Entry point of ``llmpulse status``."""
    urls = args.url or [DEFAULT_URL]
    documents = []
    for url in urls:  # replicas: what the reachable ones say, and 1 when one is not
        try:
            documents.append(fetch_status(url))
        except StatusError as exc:
            print(f"llmpulse status: {exc}", file=sys.stderr)
    if not documents:
        return 1
    document = merge_status(documents)
    if args.json:
        print(json.dumps(document, indent=2, sort_keys=True))
    else:
        print(render_table(document, args.window, service=args.service))
    return 0 if len(documents) == len(urls) else 1
