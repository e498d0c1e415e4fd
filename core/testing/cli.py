"""``llmpulse fake-provider``: run the fake LLM provider in the foreground until Ctrl-C or SIGTERM.

Without ``--script`` every request gets the default reply, except the processor's judge prompt,
which gets a canned verdict (:mod:`llmpulse.testing.fake_judge`); ``--script FILE`` serves the
replies of a script (:mod:`llmpulse.testing.script`).
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from pathlib import Path
from types import FrameType

from llmpulse.testing.fake_provider import FakeProvider
from llmpulse.testing.script import Script, ScriptError, load_script


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``fake-provider`` subcommand."""
    parser = subparsers.add_parser(
        "fake-provider",
        help="serve a local fake OpenAI/Anthropic API for tests and demos",
        description=(
            "Serve a fake OpenAI and Anthropic API on loopback. The first line on stdout is the base URL "
            "(useful with --port 0); point OpenAI clients at <url>/v1 and Anthropic clients at <url>. "
            "Requests carrying llmpulse's judge prompt get a canned verdict (scores 4), so the fake "
            "provider can stand in for the judge. --script FILE serves scripted replies, tool calls, "
            "errors and latencies (format: docs/fake-provider.md)."
        ),
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default: %(default)s)")
    parser.add_argument(
        "--port", type=int, default=8700, help="port to bind, 0 for any free port (default: %(default)s)"
    )
    parser.add_argument(
        "--script",
        type=Path,
        metavar="FILE",
        help="JSON or TOML reply script: rules matched on model and last user message, a default",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Serve until interrupted; returns the exit code."""
    stop = threading.Event()

    def on_signal(_signum: int, _frame: FrameType | None) -> None:
        stop.set()

    try:
        script = Script() if args.script is None else load_script(args.script)
    except ScriptError as exc:
        print(f"llmpulse fake-provider: bad script: {exc}", file=sys.stderr)
        return 2
    try:
        provider = FakeProvider(host=args.host, port=args.port)
        provider.set_handler(script.handler())
        provider.start()
    except OSError as exc:
        print(f"llmpulse fake-provider: cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 1
    previous = signal.signal(signal.SIGTERM, on_signal)
    try:
        print(provider.base_url, flush=True)
        print(
            f"OpenAI base_url: {provider.openai_base_url}  Anthropic base_url: {provider.base_url}",
            flush=True,
        )
        what = f"{len(script.rules)} scripted rule(s) from {args.script}" if args.script else "default reply"
        judge = "; judge requests get canned verdicts" if script.judge else ""
        print(f"serving: {what}{judge}", flush=True)
        stop.wait()
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
        provider.stop()
    return 0
