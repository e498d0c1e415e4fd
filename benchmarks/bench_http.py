"""Benchmark: OTLP/HTTP throughput of the processor's HTTP server against the home-made one it replaced.

Both targets are a real ``llmpulse serve`` (derived metrics only by default; ``--engines`` runs
the quality and drift engines too) started the same way; only the HTTP server differs:

* **new**: the processor as installed (``llmpulse.processor.http_server`` on aiohttp);
* **old**: the same processor with the home-made asyncio HTTP/1.1 server put back in place of
  ``llmpulse.processor.http_server``, read from git at ``--baseline-rev`` (the last commit that
  had it), so nothing but the server differs; or, with ``--baseline-python``, an old install
  run whole (e.g. ``/tmp/work/basevenv/bin/python``).

A separate load process (this file's ``load`` command) sends pre-serialized 512-span protobuf
requests (``otlp_load.build_requests``, the gRPC bench's requests) as ``POST /v1/traces`` over
``--concurrency`` keep-alive connections, with a minimal HTTP/1.1 client so the load costs little
CPU; 429/503 are retried after 50 ms and counted. Reported per target: spans/s of wall time,
spans/s per core (spans / CPU seconds of the target, user + system from /proc), peak RSS, and the
accounting (sent = accepted + rejected as the target reports them). Targets alternate
``--rounds`` times; the summary compares the medians and checks the 20% rule of the layout issue.

Usage: ``python benchmarks/bench_http.py [--spans N] [--rounds N] [--engines]
[--baseline-rev REV | --baseline-python PATH]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
BASELINE_REV = "d8d2db90664cb352930dd4747662dd651c1c4718"  # the last commit with the home-made server
MODULE = "llmpulse.processor.http_server"
RETRY_DELAY = 0.05
# Runs the processor's CLI with another module installed as llmpulse.processor.http_server first.
LAUNCH_WITH_SERVER = """\
import importlib.util, sys
spec = importlib.util.spec_from_file_location({module!r}, sys.argv[1])
module = importlib.util.module_from_spec(spec)
sys.modules[spec.name] = module
spec.loader.exec_module(module)
from llmpulse.cli import main
sys.exit(main(sys.argv[2:]))
"""


@dataclass
class Result:
    """Figures for one target in one round."""

    name: str
    sent: int = 0
    accepted: int = 0
    rejected: int = 0
    retries: int = 0
    wall_s: float = 0.0
    cpu_s: float = 0.0
    peak_rss_mb: float = 0.0
    request_bytes: int = 0
    rss_samples_mb: list[float] = field(default_factory=list)

    @property
    def per_s(self) -> float:
        """Spans per second of wall time."""
        return self.sent / self.wall_s if self.wall_s else 0.0

    @property
    def per_core(self) -> float:
        """Spans per CPU second of the target."""
        return self.sent / self.cpu_s if self.cpu_s else 0.0

    @property
    def unaccounted(self) -> int:
        """Spans sent that the target neither accepted nor rejected."""
        return self.sent - self.accepted - self.rejected


# ---------------------------------------------------------------------------------------------
# load generator (runs in its own process)


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, dict[str, str], bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if sep:
            headers[name.strip().lower()] = value.strip()
    body = await reader.readexactly(int(headers.get("content-length", "0")))
    return status, headers, body


async def run_load(
    host: str, port: int, spans: int, concurrency: int, pool: int, *, as_json: bool = False
) -> dict[str, object]:
    """Send ``spans`` spans (rounded up to whole requests) over keep-alive connections, as
    protobuf or (``as_json``) OTLP/JSON bodies."""
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse
    from otlp_load import SPANS_PER_REQUEST, build_json_requests, build_requests

    from llmpulse.processor.ingest.otlp_json import parse_response

    bodies = build_json_requests(pool) if as_json else build_requests(pool)
    media = "application/json" if as_json else "application/x-protobuf"
    decode = parse_response if as_json else ExportTraceServiceResponse.FromString
    heads = [
        (
            f"POST /v1/traces HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: {media}\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        ).encode()
        for body in bodies
    ]
    total_requests = -(-spans // SPANS_PER_REQUEST)
    counters = {"sent_spans": 0, "rejected_spans": 0, "retries": 0, "requests": 0}
    next_index = 0

    async def connection() -> None:
        nonlocal next_index
        reader, writer = await asyncio.open_connection(host, port)
        try:
            while next_index < total_requests:
                k = next_index % len(bodies)
                next_index += 1
                while True:
                    writer.write(heads[k])
                    writer.write(bodies[k])
                    await writer.drain()
                    status, headers, body = await _read_response(reader)
                    if headers.get("connection", "").lower() == "close":
                        writer.close()
                        reader, writer = await asyncio.open_connection(host, port)
                    if status == 200:
                        break
                    if status not in (429, 503):
                        raise SystemExit(f"load: POST /v1/traces answered {status}: {body[:200]!r}")
                    counters["retries"] += 1
                    await asyncio.sleep(RETRY_DELAY)
                counters["requests"] += 1
                counters["sent_spans"] += SPANS_PER_REQUEST
                response = decode(body)
                counters["rejected_spans"] += response.partial_success.rejected_spans
        finally:
            writer.close()

    started = time.perf_counter()
    await asyncio.gather(*(connection() for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    return {**counters, "seconds": elapsed, "request_bytes": len(bodies[0])}


# ---------------------------------------------------------------------------------------------
# targets


def _serve_args(ports: tuple[int, int, int], config: Path) -> list[str]:
    grpc, http, admin = ports
    return [
        "--log-level", "WARNING", "serve", "--config", str(config), "--grpc-port", str(grpc),
        "--http-port", str(http), "--admin-port", str(admin), "--max-request-bytes", str(64 << 20),
    ]  # fmt: skip


def _old_server_file(rev: str, into: Path) -> Path:
    try:
        source = subprocess.run(
            ["git", "show", f"{rev}:processor/http_server.py"],
            cwd=ROOT, capture_output=True, text=True, check=True,
        ).stdout  # fmt: skip
    except (OSError, subprocess.CalledProcessError) as exc:
        raise SystemExit(
            f"bench: cannot read processor/http_server.py at {rev} from git ({exc}); "
            "run from a checkout or give --baseline-python"
        ) from None
    if "aiohttp" in source:
        raise SystemExit(f"bench: processor/http_server.py at {rev} is not the home-made server")
    path = into / "old_http_server.py"
    path.write_text(source)
    return path


def _fresh_config(state: Path, engines: bool) -> Path:
    """A config with its own quality database, so no run inherits another's."""
    run = Path(tempfile.mkdtemp(dir=state))
    config = run / "processor.toml"
    config.write_text(
        f'[quality]\ndb_path = "{run / "quality.db"}"\n'
        + ("" if engines else "enabled = false\n[drift]\nenabled = false\n")
    )
    return config


def run_target(name: str, argv: list[str], ports: tuple[int, int, int], args: argparse.Namespace) -> Result:
    """Start a target, load it over OTLP/HTTP from another process, read its figures, stop it."""
    import bench_processor as bp

    _, http_port, admin_port = ports
    url = f"http://127.0.0.1:{admin_port}/metrics"

    def counts() -> tuple[float, float]:
        text = bp.scrape(url)
        return (
            bp.metric_sum(text, "llmpulse_processor_spans_accepted_total"),
            bp.metric_sum(text, "llmpulse_processor_spans_rejected_total"),
        )

    log = tempfile.TemporaryFile()  # noqa: SIM115 - closed in the finally below
    process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
    result = Result(name)
    try:
        bp.wait_until(lambda: counts() is not None, f"{name} metrics endpoint")
        bp.wait_until(lambda: bp._can_connect(http_port), f"{name} OTLP/HTTP port")
        cpu_before = bp.cpu_seconds(process.pid)
        done = threading.Event()

        def sample() -> None:
            while not done.wait(1.0):
                result.rss_samples_mb.append(bp.rss_mb(process.pid))

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        load = subprocess.run(
            [sys.executable, str(Path(__file__).resolve()), "load", "--port", str(http_port),
             "--spans", str(args.spans), "--concurrency", str(args.concurrency)],
            capture_output=True, text=True, cwd=ROOT, check=False,
        )  # fmt: skip
        done.set()
        sampler.join()
        if load.returncode != 0:
            log.seek(0)
            target_log = log.read().decode(errors="replace")[-2000:]
            raise SystemExit(
                f"bench: load generator failed against {name}:\n{load.stderr[-3000:]}\n"
                f"target log:\n{target_log}"
            )
        report = json.loads(load.stdout.strip().splitlines()[-1])
        result.sent, result.retries = report["sent_spans"], report["retries"]
        result.wall_s, result.request_bytes = report["seconds"], report["request_bytes"]
        deadline = time.monotonic() + 10  # the target counts on receipt; let the last ones land
        accepted, rejected = counts()
        while accepted + rejected < result.sent and time.monotonic() < deadline:
            time.sleep(0.2)
            accepted, rejected = counts()
        result.accepted, result.rejected = int(accepted), int(rejected)
        result.cpu_s = bp.cpu_seconds(process.pid) - cpu_before
        result.peak_rss_mb = bp.rss_mb(process.pid, "VmHWM")
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()
    return result


def bench(args: argparse.Namespace) -> list[Result]:
    """Alternate old and new targets ``args.rounds`` times."""
    import bench_processor as bp

    results: list[Result] = []
    with tempfile.TemporaryDirectory(prefix="llmpulse-bench-http-") as tmp:
        state = Path(tmp)
        old_file = None if args.baseline_python else _old_server_file(args.baseline_rev, state)
        for _ in range(args.rounds):
            for which in ("old", "new"):
                ports = (bp.free_port(), bp.free_port(), bp.free_port())
                serve = _serve_args(ports, _fresh_config(state, args.engines))
                if which == "new":
                    argv = [sys.executable, "-m", "llmpulse.cli", *serve]
                    name = "new (aiohttp)"
                elif args.baseline_python:
                    argv = [str(args.baseline_python), "-m", "llmpulse.cli", *serve]
                    name = "old (baseline install)"
                else:
                    argv = [
                        sys.executable,
                        "-c",
                        LAUNCH_WITH_SERVER.format(module=MODULE),
                        str(old_file),
                        *serve,
                    ]
                    name = "old (home-made)"
                results.append(run_target(name, argv, ports, args))
    return results


def print_report(results: list[Result], args: argparse.Namespace) -> None:
    """Per-round rows, medians per target, the new/old ratio and the accounting."""
    print(
        f"OTLP/HTTP, {results[0].request_bytes} bytes per 512-span protobuf request, "
        f"{args.concurrency} keep-alive connections, engines {'on' if args.engines else 'off'}"
    )
    print(
        f"{'target':<24} {'spans':>9} {'wall s':>7} {'spans/s':>9} {'cpu s':>7} {'spans/s/core':>12} "
        f"{'peak RSS MB':>11} {'accepted':>9} {'rejected':>8} {'unaccounted':>11} {'retries':>7}"
    )
    for r in results:
        print(
            f"{r.name:<24} {r.sent:>9} {r.wall_s:>7.1f} {r.per_s:>9.0f} {r.cpu_s:>7.1f} {r.per_core:>12.0f} "
            f"{r.peak_rss_mb:>11.1f} {r.accepted:>9} {r.rejected:>8} {r.unaccounted:>11} {r.retries:>7}"
        )
    names = list(dict.fromkeys(r.name for r in results))
    medians = {
        n: (
            statistics.median(r.per_s for r in results if r.name == n),
            statistics.median(r.per_core for r in results if r.name == n),
        )
        for n in names
    }
    for n, (per_s, per_core) in medians.items():
        print(f"median {n}: {per_s:.0f} spans/s, {per_core:.0f} spans/s/core")
    old, new = medians[names[0]], medians[names[1]]
    wall, core = new[0] / old[0] - 1, new[1] / old[1] - 1
    verdict = "within" if min(wall, core) >= -0.20 else "BEYOND"
    print(f"new vs old: spans/s {wall:+.1%}, spans/s/core {core:+.1%} ({verdict} the 20% allowed)")
    for r in results:
        status = "OK" if r.unaccounted == 0 else "MISMATCH"
        print(
            f"accounting {r.name}: sent {r.sent} = accepted {r.accepted} + rejected {r.rejected} -> {status}"
        )


def main(argv: list[str] | None = None) -> int:
    """Command-line entry: ``bench`` (default) or ``load`` (the load process)."""
    sys.path.insert(0, str(HERE))  # the sibling benchmark modules: otlp_load, bench_processor
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--spans", type=int, default=1_000_000, help="spans per target and round")
    parser.add_argument("--concurrency", type=int, default=8, help="keep-alive connections (default: 8)")
    parser.add_argument("--rounds", type=int, default=3, help="old/new pairs, alternating (default: 3)")
    parser.add_argument("--engines", action="store_true", help="run the quality and drift engines too")
    parser.add_argument("--baseline-rev", default=BASELINE_REV, help="git revision with the old server")
    parser.add_argument("--baseline-python", type=Path, help="run an old install whole as the baseline")
    parser.add_argument("--json", action="store_true", help="also print the figures as JSON")
    commands = parser.add_subparsers(dest="command")
    load = commands.add_parser("load", help="the load process (started by the bench)")
    load.add_argument("--host", default="127.0.0.1")
    load.add_argument("--port", type=int, required=True)
    load.add_argument("--pool", type=int, default=16, help="distinct pre-built requests to cycle through")
    load.add_argument("--spans", type=int, default=1_000_000)
    load.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args(argv)
    if args.command == "load":
        report = asyncio.run(run_load(args.host, args.port, args.spans, args.concurrency, args.pool))
        print(json.dumps(report))
        return 0
    results = bench(args)
    print_report(results, args)
    if args.json:
        print(json.dumps([{**r.__dict__, "per_s": r.per_s, "per_core": r.per_core} for r in results]))
    return 0 if all(r.unaccounted == 0 for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
