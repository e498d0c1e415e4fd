"""``llmpulse demo``: a day of realistic LLM traffic and ten incidents, played in a few minutes.

The demo starts its own stack (processor, collector, Prometheus with the shipped alert rules
*time-compressed* by ``--speed``, Alertmanager with its timings compressed alike, a webhook
sink) and its own scripted fake LLM provider, then runs a small RAG-style app as a separate
process, instrumented by ``LLMPULSE_ENABLED=1`` alone. On a schedule it injects, one after
another: a provider error burst, a retrieval slowdown, a quality regression, a cost spike, a
topic shift, an abandonment surge with happy explicit feedback, a silent model change, a tool
that starts failing, an agent that loops and users who leave after the first answer; each
ends and the system recovers. A live view shows what the stack sees; at the end a table says
which alert reported each incident and how fast (from the webhook journal), and lists any alert
that fired with no incident. ``report.md`` (with plots) and ``report.json`` are written too.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

from llmpulse.contract import environment_variables as E
from llmpulse.contract.environment_variables import LLMPULSE_CONTENT_MAX_CHARS as ENV_CONTENT_MAX_CHARS
from llmpulse.contract.environment_variables import (
    OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT as ENV_CAPTURE_CONTENT,
)
from llmpulse.demo.provider import reply_for
from llmpulse.demo.report import DemoResult, attribute, render_table, write_report
from llmpulse.demo.rules import (
    RULES_DIR,
    alert_rules,
    compress_alertmanager,
    compress_duration,
    engine_settings,
    parse_duration,
    write_compressed_rules,
)
from llmpulse.demo.scenario import Incident, ScenarioState, Schedule
from llmpulse.demo.sources import Prometheus, post, read_journal
from llmpulse.demo.view import SnapshotReader, View, make_view
from llmpulse.errors import LLMPulseError
from llmpulse.processor.drift.admin import REFREEZE_PATH
from llmpulse.stack import files
from llmpulse.stack.local import Stack, StackPorts, default_state_dir, free_ports
from llmpulse.testing.fake_provider import FakeProvider

logger = logging.getLogger(__name__)

__all__ = ["DemoError", "DemoOptions", "register", "run_demo"]

DEFAULT_SPEED = 60.0
SCRAPE_INTERVAL = "1s"
MIN_WINDOW_S = 10  # a compressed window holds ten scrapes and several export batches
# a compressed ``for:`` holds three scrapes: LLMPulseMonitoringDown (for: 2m, 1.3 s at speed 90)
# fired at start-up, before Prometheus' first scrape of the processor (CI of 809716e)
MIN_FOR_S = 3


class DemoError(LLMPulseError, RuntimeError):
    """The demo could not run: a component did not start or the app died."""


@dataclass(frozen=True)
class DemoOptions:
    """How to run the demo. ``out_dir`` defaults to ``<state_dir>/report``."""

    state_dir: Path
    speed: float = DEFAULT_SPEED
    ports: StackPorts = dataclasses.field(default_factory=StackPorts)
    out_dir: Path | None = None
    refresh_s: float = 3.0
    keep_stack: bool = False
    rules_dir: Path = RULES_DIR
    seed: int = 11


def _start_app(options: DemoOptions, scenario: ScenarioState, provider_url: str) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        E.LLMPULSE_ENABLED: "1",
        "OTEL_SERVICE_NAME": "llmpulse-demo-app",
        "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{options.ports.collector_grpc}",
        "OTEL_BSP_SCHEDULE_DELAY": "500",
        # Prompts and answers on the spans: the judge and the drift engine read them. Whole:
        # a bloated prompt cut at the default limit loses its question (the last message).
        ENV_CAPTURE_CONTENT: "true",
        ENV_CONTENT_MAX_CHARS: "100000",
    }
    argv = [sys.executable, "-m", "llmpulse.demo.app", "--scenario", str(scenario.path)]
    argv += ["--base-url", provider_url, "--seed", str(options.seed)]
    log = (options.state_dir / "app.log").open("ab")
    try:
        return subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT)
    finally:
        log.close()


def _stop_app(app: subprocess.Popen[bytes], scenario: ScenarioState) -> None:
    scenario.stop_app()
    try:
        app.wait(timeout=30)
    except subprocess.TimeoutExpired:
        logger.warning("demo app did not stop within 30 s; killing it")
        app.kill()
        app.wait()


def _wait_for_traffic(prometheus: Prometheus, app: subprocess.Popen[bytes], timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if app.poll() is not None:
            raise DemoError(f"the demo app exited with code {app.returncode}; see app.log in the state dir")
        if prometheus.query("sum(llmpulse_requests_total) > 0"):
            return
        time.sleep(0.5)
    raise DemoError(f"no calls reached Prometheus within {timeout:.0f} s; see the logs in the state dir")


def _play(
    *,
    schedule: Schedule,
    scenario: ScenarioState,
    app: subprocess.Popen[bytes],
    reader: SnapshotReader,
    view: View,
    refresh_s: float,
    provider: FakeProvider,
    processor_url: str,
) -> float:
    """Run the schedule in real time; returns its start (unix seconds)."""
    started_wall, started = time.time(), time.monotonic()
    next_view = started
    while (elapsed := time.monotonic() - started) < schedule.duration_s:
        if app.poll() is not None:
            raise DemoError(f"the demo app exited with code {app.returncode} during the run; see app.log")
        before = scenario.active
        if scenario.set_active(i.key for i in schedule.active(elapsed)):
            for incident in schedule.incidents:
                if (incident.key in scenario.active) != (incident.key in before):
                    verb = "starts" if incident.key in scenario.active else "ends"
                    view.say(f"t={elapsed:5.0f}s  {incident.title} {verb} ({incident.feature})")
                    if verb == "ends" and incident.after:
                        view.say(f"t={elapsed:5.0f}s  on-call: {_after(incident, processor_url)}")
        if time.monotonic() >= next_view:
            provider.clear()  # the fake provider records every request; the demo reads none
            view.update(reader.read(elapsed))
            next_view += refresh_s
        time.sleep(0.2)
    scenario.set_active(())
    return started_wall


def _after(incident: Incident, processor_url: str) -> str:
    """Do what the on-call does once ``incident`` is over; returns what was done."""
    if incident.after == "refreeze_drift":
        # The topic shift also moved the drift engine's slowly updated centroid; without a new
        # reference the similarity chart keeps alarming on the returning normal prompts.
        url = f"{processor_url}{REFREEZE_PATH}?feature={incident.feature}&from=next"
        done = post(url)
        return f"llmpulse drift refreeze --feature {incident.feature} ({'ok' if done else 'failed'})"
    return f"nothing to do for {incident.after!r}"


def run_demo(options: DemoOptions, view: View) -> DemoResult:
    """Start everything, play the schedule, report; stops what it started (unless ``keep_stack``)."""
    state, schedule = options.state_dir, Schedule(options.speed)
    state.mkdir(parents=True, exist_ok=True)
    (state / "notifications.jsonl").unlink(missing_ok=True)
    rules = write_compressed_rules(
        state / "rules",
        options.speed,
        source_dir=options.rules_dir,
        min_window_s=MIN_WINDOW_S,
        min_for_s=MIN_FOR_S,
    )
    shipped_am = files.alertmanager_config().read_text()
    stack = Stack(
        state,
        options.ports,
        rule_files=rules,
        alertmanager_config=compress_alertmanager(shipped_am, options.speed),
        interval=SCRAPE_INTERVAL,
        fake_provider=False,
        processor_config_extra=engine_settings(options.speed),
        # incident pages look an hour back in simulated time
        console_args=("--incident-window", f"{3600 / options.speed:g}"),
    )
    if stack.running():
        stack.down(view.say)  # a previous demo's stack left with --keep-stack
    scenario = ScenarioState(state / "scenario.json")
    provider = FakeProvider(port=options.ports.fake_provider)
    provider.set_handler(reply_for(scenario, seed=options.seed))
    prometheus = Prometheus(f"http://127.0.0.1:{options.ports.prometheus}")
    app: subprocess.Popen[bytes] | None = None
    try:
        provider.start()
        view.say(f"==> scripted fake provider on {provider.base_url} (app, judge and embeddings)")

        def say(line: str) -> None:
            if line.startswith("Logs in "):  # the stack's own hint; the demo stops its stack itself
                line = f"Logs in {state}; the demo stops this stack when it ends (unless --keep-stack)"
            view.say(line)

        if stack.up(say) != 0:
            raise DemoError(f"the stack did not start; logs in {state}")
        app = _start_app(options, scenario, provider.base_url)
        view.say(f"==> demo app started (pid {app.pid}); waiting for its first calls in Prometheus ...")
        _wait_for_traffic(prometheus, app)
        # One rule window of traffic before the schedule, so the first incident does not start
        # while the rates' first windows still fill. (The cost baseline, an average since the
        # start, skips those by itself: it waits for two hours of history to average.)
        lead_s = min(60.0, parse_duration(compress_duration("5m", options.speed, MIN_WINDOW_S)))
        view.say(f"==> traffic flowing; {lead_s:g} s for the first rule window to fill ...")
        time.sleep(lead_s)
        view.say(
            f"==> playing {schedule.total_min / 60:.1f} h of traffic at speed {options.speed:g}: "
            f"{schedule.duration_s / 60:.1f} min"
        )
        reader = SnapshotReader(prometheus, f"http://127.0.0.1:{options.ports.processor_admin}", schedule)
        with view:
            started = _play(
                schedule=schedule,
                scenario=scenario,
                app=app,
                reader=reader,
                view=view,
                refresh_s=options.refresh_s,
                provider=provider,
                processor_url=f"http://127.0.0.1:{options.ports.processor_admin}",
            )
        defined = alert_rules(rules)
        journal = read_journal(state / "notifications.jsonl")
        result = attribute(schedule, started, journal, defined, lambda expr: bool(prometheus.query(expr)))
        window = compress_duration("5m", options.speed, MIN_WINDOW_S)
        report = write_report(result, options.out_dir or state / "report", prometheus, window)
        view.say(render_table(result))
        view.say(f"report: {report}")
        return result
    finally:
        if app is not None:
            _stop_app(app, scenario)
        if not options.keep_stack:
            stack.down(view.say)
        provider.stop()


def _default_state_dir() -> Path:
    return files.state_dir("demo", os.environ)


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``demo`` subcommand."""
    parser = subparsers.add_parser(
        "demo",
        help="realistic traffic with ten scheduled incidents against a local stack; reports detection",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--speed",
        type=float,
        default=DEFAULT_SPEED,
        help=(
            "simulated seconds per real second; rule windows and for: are divided by it "
            f"(default {DEFAULT_SPEED:g}: the {Schedule(1).total_min / 60:.1f} h schedule takes "
            f"{Schedule(DEFAULT_SPEED).duration_s / 60:.1f} min)"
        ),
    )
    parser.add_argument("--state-dir", type=Path, default=_default_state_dir(), help="configs, logs, journal")
    parser.add_argument(
        "--out", type=Path, default=None, help="report directory (default: <state-dir>/report)"
    )
    parser.add_argument("--refresh", type=float, default=3.0, help="seconds between view updates")
    parser.add_argument("--keep-stack", action="store_true", help="leave the stack running after the report")
    parser.add_argument(
        "--free-ports",
        action="store_true",
        help="use free ports instead of the standard ones (8700, 4317, 9090 ...)",
    )
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    if args.speed <= 0:
        print("llmpulse demo: --speed must be positive", file=sys.stderr)
        return 2
    ports = free_ports() if args.free_ports else StackPorts()
    if not args.free_ports and Stack(default_state_dir()).running():
        print(
            "llmpulse demo: the stack of `llmpulse up` is running on the standard ports; the demo starts "
            "its own with time-compressed rules. Stop it first (`llmpulse down`) or pass --free-ports.",
            file=sys.stderr,
        )
        return 2

    def on_term(_signum: int, _frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    options = DemoOptions(args.state_dir, args.speed, ports, args.out, args.refresh, args.keep_stack)
    view = make_view(sys.stdout)
    try:
        result = run_demo(options, view)
    except (DemoError, files.StackFilesMissing) as exc:
        print(f"llmpulse demo: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:  # a port in use, most likely
        print(f"llmpulse demo: {exc}; another process holds a port? try --free-ports", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("llmpulse demo: interrupted; everything it started is stopped", file=sys.stderr)
        return 130
    return 0 if result.ok else 1
