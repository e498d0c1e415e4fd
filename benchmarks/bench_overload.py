"""Benchmark: a processor under 4x its sustainable load answers fast, refuses with a retry hint,
and counts every span once.

One real ``llmpulse serve`` (quality and drift engines on, judge off) per target:

1. **Sustainable rate**: a closed loop of ``--concurrency`` export calls sends ``--probe-spans``
   spans as fast as the target takes them; spans accepted per second of wall time.
2. **Load**: for each of ``--factors`` (1 2 4), an open loop sends 512-span requests at that
   many times the sustainable rate for ``--seconds`` seconds, each call with the OpenTelemetry
   exporters' default 10 s timeout and no retry, and records when and how each call was answered;
   then waits for the target's queue to empty.

Reported per target and factor: answers within 2 s, p50/p99/max answer time, outcomes (OK,
refused with RESOURCE_EXHAUSTED/UNAVAILABLE, DEADLINE_EXCEEDED), spans the client saw accepted
against spans the target counted (a positive difference is spans counted for calls the client
saw fail, which its retry would count again), whether the target's own books balance (spans
received = accepted + rejected + refused), and its resident memory after the phase and at its
peak. Targets: the processor as installed, and with ``--baseline-python`` another install (e.g.
a venv of an older commit) run the same way, in the same run.

``--protocol http`` does the same over OTLP/HTTP (``POST /v1/traces``, protobuf): the closed loop
of ``bench_http.py`` for the sustainable rate, and an open loop of POSTs, each on an idle
keep-alive connection or a new one, with the same 10 s timeout; outcomes are then HTTP statuses
(``200``, ``429``, ``503``), ``timeout`` or ``error``. ``--protocol json`` does the same with the
same requests as OTLP/JSON bodies (``application/json``, hex ids), whose decoding costs several
times the processing; several protocols (``--protocol json http``) run one after the other, each
against a fresh target, so one is the other's same-run baseline.

Usage: ``python benchmarks/bench_overload.py [--protocol grpc|http|json ...] [--seconds 20]
[--factors 1 2 4] [--baseline-python PATH]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import grpc

sys.path.insert(0, str(Path(__file__).resolve().parent))

import otlp_load
from bench_http import run_load as http_closed_loop
from bench_processor import free_port, metric_sum, rss_mb, scrape, wait_until
from otlp_load import EXPORT, SPANS_PER_REQUEST, build_json_requests, build_requests

TIMEOUT_S = 10.0  # the OTLP exporters' default
CHANNELS = 64
PROBE_SPANS = {"grpc": 200_000, "http": 200_000, "json": 20_000}  # JSON decodes ~10x slower
MEDIA = {"http": "application/x-protobuf", "json": "application/json"}


@dataclass
class Outcome:
    """What one target did at one load factor."""

    name: str
    factor: float
    sustainable: float = 0.0
    offered: float = 0.0
    latencies: list[float] = field(default_factory=list)
    codes: dict[str, int] = field(default_factory=dict)
    slowest: dict[str, float] = field(default_factory=dict)  # longest answer per outcome
    acked_spans: int = 0
    counted_spans: int = 0
    books_balance: bool = False
    rss_mb: float = 0.0
    peak_rss_mb: float = 0.0

    def record(self, code: str, seconds: float) -> None:
        """One answer (or failure) ``code`` after ``seconds``."""
        self.latencies.append(seconds)
        self.codes[code] = self.codes.get(code, 0) + 1
        self.slowest[code] = max(seconds, self.slowest.get(code, 0.0))


def _serve(
    python: str, state: Path, engines: bool, protocol: str
) -> tuple[subprocess.Popen[bytes], int, str]:
    grpc_port, http_port, admin_port = free_port(), free_port(), free_port()
    config = state / "processor.toml"
    config.write_text(
        f'[quality]\ndb_path = "{state / "quality.db"}"\n'
        + ("" if engines else "enabled = false\n[drift]\nenabled = false\n")
    )
    argv = [
        python, "-m", "llmpulse.cli", "--log-level", "ERROR", "serve", "--config", str(config),
        "--grpc-port", str(grpc_port), "--http-port", str(http_port), "--admin-port", str(admin_port),
    ]  # fmt: skip
    process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{admin_port}/metrics"
    wait_until(lambda: _scrapes(url), "the processor's metrics endpoint")
    return process, grpc_port if protocol == "grpc" else http_port, url


def _scrapes(url: str) -> bool:
    try:
        scrape(url)
    except OSError:
        return False
    return True


def _books(url: str) -> tuple[int, int, int]:
    """(spans received, spans counted = accepted + rejected, spans refused) by the target."""
    text = scrape(url)
    return (
        int(metric_sum(text, "llmpulse_processor_spans_received_total")),
        int(
            metric_sum(text, "llmpulse_processor_spans_accepted_total")
            + metric_sum(text, "llmpulse_processor_spans_rejected_total")
        ),
        int(metric_sum(text, "llmpulse_processor_spans_refused_total")),
    )


def _queue_empty(url: str) -> bool:
    return metric_sum(scrape(url), "llmpulse_processor_queue_spans") == 0


def _probe(port: int, url: str, spans: int, concurrency: int, protocol: str) -> float:
    """Spans per second the target takes in a closed loop (the throughput bench's load), up to
    the moment its queue is empty again: a queue holds up to a second of work, so the time to
    the last answer alone would overstate the rate, the more so the shorter the probe."""
    begin = time.perf_counter()
    if protocol == "grpc":
        report = asyncio.run(otlp_load.run(f"127.0.0.1:{port}", spans, concurrency, pool=16))
    else:
        load = http_closed_loop("127.0.0.1", port, spans, concurrency, pool=16, as_json=protocol == "json")
        report = asyncio.run(load)
    wait_until(lambda: _queue_empty(url), "the queue to empty", timeout=60)
    return float(report["sent_spans"]) / (time.perf_counter() - begin)  # type: ignore[arg-type]


async def _open_loop(one: Callable[[int], Awaitable[None]], interval: float, seconds: float) -> None:
    """Start ``one(n)`` every ``interval`` s for ``seconds``, whatever the answers; wait for all."""
    tasks = []
    begin = time.perf_counter()
    n = 0
    while time.perf_counter() - begin < seconds:
        tasks.append(asyncio.ensure_future(one(n)))
        n += 1
        await asyncio.sleep(max(0.0, begin + n * interval - time.perf_counter()))
    await asyncio.gather(*tasks)


async def _overload(port: int, requests: list[bytes], rate: float, seconds: float, out: Outcome) -> None:
    """Open loop at ``rate`` spans/s, spread over :data:`CHANNELS` connections as separate
    exporters would be (one HTTP/2 connection carries only so many streams at once, and waiting
    for a stream slot is the client's delay, not the server's)."""
    interval = SPANS_PER_REQUEST / rate
    channels = [grpc.aio.insecure_channel(f"127.0.0.1:{port}") for _ in range(CHANNELS)]
    calls = [c.unary_unary(EXPORT, request_serializer=None, response_deserializer=None) for c in channels]

    async def one(n: int) -> None:
        started = time.perf_counter()
        try:
            await calls[n % CHANNELS](requests[n % len(requests)], timeout=TIMEOUT_S)
            code = "OK"
            out.acked_spans += SPANS_PER_REQUEST
        except grpc.aio.AioRpcError as exc:
            code = exc.code().name
        out.record(code, time.perf_counter() - started)

    try:
        await asyncio.gather(*(c.channel_ready() for c in channels))
        await _open_loop(one, interval, seconds)
    finally:
        for channel in channels:
            await channel.close()


async def _overload_http(
    port: int, requests: list[bytes], rate: float, seconds: float, out: Outcome, *, media: str
) -> None:
    """Open loop of POSTs at ``rate`` spans/s; each goes out on an idle keep-alive connection or
    a new one (HTTP/1.1 carries one request at a time per connection; no cap, so that no request
    waits on the client's side for a connection)."""
    interval = SPANS_PER_REQUEST / rate
    url = f"http://127.0.0.1:{port}/v1/traces"
    headers = {"Content-Type": media}
    timeout = aiohttp.ClientTimeout(total=TIMEOUT_S)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:

        async def one(n: int) -> None:
            started = time.perf_counter()
            try:
                async with session.post(
                    url, data=requests[n % len(requests)], headers=headers, timeout=timeout
                ) as r:
                    await r.read()
                    code = str(r.status)
                if r.status == 200:
                    out.acked_spans += SPANS_PER_REQUEST
            except TimeoutError:
                code = "timeout"
            except aiohttp.ClientError as exc:
                code = f"error ({type(exc).__name__})"
            out.record(code, time.perf_counter() - started)

        await _open_loop(one, interval, seconds)


def run(
    name: str, python: str, args: argparse.Namespace, protocol: str, requests: list[bytes]
) -> list[Outcome]:
    outcomes = []
    with tempfile.TemporaryDirectory(prefix="llmpulse-overload-") as state:
        process, port, url = _serve(python, Path(state), not args.metrics_only, protocol)
        try:
            probe_spans = args.probe_spans or PROBE_SPANS[protocol]
            sustainable = _probe(port, url, probe_spans, args.concurrency, protocol)
            for factor in args.factors:
                out = Outcome(name, factor, sustainable, factor * sustainable)
                wait_until(lambda: _queue_empty(url), "the queue to empty", timeout=60)
                received, counted, refused = _books(url)
                if protocol == "grpc":
                    asyncio.run(_overload(port, requests, out.offered, args.seconds, out))
                else:
                    load = _overload_http(
                        port, requests, out.offered, args.seconds, out, media=MEDIA[protocol]
                    )
                    asyncio.run(load)
                # whatever is still queued is processed (or dropped) by now
                wait_until(lambda: _queue_empty(url), "the queue to empty", timeout=60)
                time.sleep(0.5)
                after = _books(url)
                out.counted_spans = after[1] - counted
                out.books_balance = after[0] - received == out.counted_spans + after[2] - refused
                out.rss_mb = rss_mb(process.pid)
                out.peak_rss_mb = rss_mb(process.pid, "VmHWM")
                outcomes.append(out)
        finally:
            process.terminate()
            process.wait(timeout=30)
    return outcomes


def _quantile(ordered: list[float], q: float) -> float:
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def report(outcomes: list[Outcome]) -> None:
    print(f"{'target':<22}{'x':>3}{'sustain':>9}{'offered':>9}{'calls':>7}{'<=2 s':>8}{'p50 s':>7}"
          f"{'p99 s':>7}{'max s':>7}  {'outcomes':<72}{'acked':>10}{'counted':>10}{'diff':>9}{'books':>6}"
          f"{'RSS':>6}{'peak':>6}")  # fmt: skip
    for o in outcomes:
        lat = sorted(o.latencies)
        within = sum(1 for x in lat if x <= 2.0) / len(lat)
        codes = ", ".join(f"{k}={v}" for k, v in sorted(o.codes.items()))
        print(
            f"{o.name:<22}{o.factor:>3g}{o.sustainable:>9,.0f}{o.offered:>9,.0f}{len(lat):>7}{within:>8.1%}"
            f"{_quantile(lat, 0.5):>7.2f}{_quantile(lat, 0.99):>7.2f}{lat[-1]:>7.2f}  {codes:<72}"
            f"{o.acked_spans:>10,}{o.counted_spans:>10,}{o.counted_spans - o.acked_spans:>9,}"
            f"{'ok' if o.books_balance else 'NO':>6}{o.rss_mb:>6.0f}{o.peak_rss_mb:>6.0f}"
        )
    print(
        "sustain/offered: spans/s; diff = spans counted for calls the client saw fail (a retry counts "
        "them again); books: received = accepted + rejected + refused on the target; RSS/peak: MB"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument(
        "--protocol",
        choices=("grpc", "http", "json"),
        nargs="+",
        default=["grpc"],
        help="OTLP/gRPC, OTLP/HTTP with protobuf or with JSON bodies; several run one after the other",
    )
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--factors", type=float, nargs="+", default=[1.0, 2.0, 4.0])
    parser.add_argument(
        "--probe-spans", type=int, help="spans of the rate probe (default: 200,000; JSON 20,000)"
    )
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--metrics-only", action="store_true", help="quality and drift engines off")
    parser.add_argument("--baseline-python", help="interpreter of another llmpulse install, run the same way")
    args = parser.parse_args()
    outcomes = []
    for protocol in args.protocol:
        requests = build_json_requests(16) if protocol == "json" else build_requests(16)
        outcomes += run(f"this tree, {protocol}", sys.executable, args, protocol, requests)
        if args.baseline_python:
            outcomes += run(f"baseline, {protocol}", args.baseline_python, args, protocol, requests)
    report(outcomes)
    summary = [{"name": o.name, "factor": o.factor, "codes": o.codes, "max_s": o.slowest} for o in outcomes]
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
