"""Benchmark: the llmpulse processor against the OpenTelemetry Collector, same load, same session.

For each target (``llmpulse serve``; the built collector with an otlp receiver, the batch
processor and the nop exporter) this starts the target, sends ``--spans`` spans in
pre-serialized 512-span OTLP/gRPC requests from a separate load-generator process
(``otlp_load.py``), and reports:

* spans/s of wall time, and spans/s per core = spans / CPU seconds used by the target
  (user + system, from /proc), which is fair to a Go process that spreads over cores;
* peak RSS (VmHWM) and RSS samples during the run (flat or growing?);
* the accounting: spans sent = accepted + rejected as the target itself reports them, and
  the difference ("unaccounted"), which must be 0.

Usage: ``python benchmarks/bench_processor.py [--spans N] [--collector PATH] [--only processor]``.
The collector path defaults to ``$LLMPULSE_COLLECTOR_BIN`` or ``.cache/collector/llmpulse-otelcol``
(built by ``scripts/bootstrap.sh``).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from llmpulse.contract.environment_variables import LLMPULSE_C_READER, LLMPULSE_COLLECTOR_BIN
from llmpulse.stack.components import free_port

STEP_EVERY = 8  # otlp_load.STEP_EVERY: one span in 8 is a step span
ROOT = Path(__file__).resolve().parent.parent
LOAD = Path(__file__).resolve().parent / "otlp_load.py"
DEFAULT_COLLECTOR = ROOT / ".cache" / "collector" / "llmpulse-otelcol"
TICKS = os.sysconf("SC_CLK_TCK")

COLLECTOR_CONFIG = """\
receivers:
  otlp:
    protocols:
      grpc:
        endpoint: 127.0.0.1:{grpc}
        max_recv_msg_size_mib: 64
processors:
  batch: {{}}
exporters:
  nop: {{}}
service:
  telemetry:
    logs:
      level: warn
    metrics:
      level: basic
      readers:
        - pull:
            exporter:
              prometheus:
                host: 127.0.0.1
                port: {metrics}
  pipelines:
    traces:
      receivers: [otlp]
      processors: [batch]
      exporters: [nop]
"""


@dataclass
class Result:
    """Figures for one target."""

    name: str
    sent: int = 0
    accepted: int = 0
    rejected: int = 0
    retries: int = 0
    wall_s: float = 0.0
    cpu_s: float = 0.0
    peak_rss_mb: float = 0.0
    rss_samples_mb: list[float] = field(default_factory=list)

    @property
    def per_core(self) -> float:
        """Spans per CPU second of the target."""
        return self.sent / self.cpu_s if self.cpu_s else 0.0

    @property
    def unaccounted(self) -> int:
        """Spans sent that the target neither accepted nor rejected."""
        return self.sent - self.accepted - self.rejected


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds used so far by process ``pid``."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime + stime


def rss_mb(pid: int, key: str = "VmRSS") -> float:
    """Resident memory of ``pid`` in MB (``VmHWM`` gives the peak)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024
    return 0.0


def _can_connect(port: int) -> bool:
    with socket.create_connection(("127.0.0.1", port), timeout=1):
        return True


def scrape(url: str) -> str:
    """GET ``url`` as text."""
    with urllib.request.urlopen(url, timeout=5) as response:
        return str(response.read().decode())


def metric_sum(text: str, name: str, label_filter: str = "") -> float:
    """Sum of every sample called ``name`` in a text exposition (optionally filtered)."""
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name) and (line[len(name)] in "{ ") and label_filter in line:
            total += float(line.rsplit(" ", 1)[1])
    return total


def wait_until(check: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    """Poll ``check`` until true; exit with a message naming ``what`` after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise SystemExit(f"bench: {what} did not become ready within {timeout:.0f}s")


def run_target(
    name: str,
    argv: list[str],
    grpc_port: int,
    counts: Callable[[], tuple[float, float]],
    *,
    spans: int,
    concurrency: int,
    shape: str = "llmpulse",
    env: dict[str, str] | None = None,
) -> Result:
    """Start a target, load it, read its figures, stop it."""
    # the target's output goes to a file, not a pipe nobody reads; closed in the finally below
    log = tempfile.TemporaryFile()  # noqa: SIM115
    process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT, env=env)
    result = Result(name)
    try:
        wait_until(lambda: counts() is not None, f"{name} metrics endpoint")
        wait_until(lambda: _can_connect(grpc_port), name)
        cpu_before = cpu_seconds(process.pid)
        samples: list[float] = []
        done = threading.Event()

        def sample() -> None:
            while not done.wait(1.0):
                samples.append(rss_mb(process.pid))

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        load = subprocess.run(
            [sys.executable, str(LOAD), "--target", f"127.0.0.1:{grpc_port}", "--spans", str(spans),
             "--concurrency", str(concurrency), "--shape", shape],
            capture_output=True, text=True, cwd=ROOT, check=False,
        )  # fmt: skip
        done.set()
        sampler.join()
        if load.returncode != 0:
            raise SystemExit(f"bench: load generator failed against {name}:\n{load.stderr[-3000:]}")
        report = json.loads(load.stdout.strip().splitlines()[-1])
        result.sent, result.retries, result.wall_s = (
            report["sent_spans"],
            report["retries"],
            report["seconds"],
        )
        # the target counts on receipt; give it a moment to finish the last requests
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            accepted, rejected = counts()
            if accepted + rejected >= result.sent:
                break
            time.sleep(0.2)
        result.accepted, result.rejected = int(accepted), int(rejected)
        result.cpu_s = cpu_seconds(process.pid) - cpu_before
        result.peak_rss_mb = rss_mb(process.pid, "VmHWM")
        result.rss_samples_mb = samples
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()
    return result


def bench_processor(
    spans: int, concurrency: int, *, engines: bool = True, shape: str = "llmpulse", upb: bool = False
) -> Result:
    """Run ``llmpulse serve`` under the load: as shipped (quality and drift engines on, judge off
    for want of an endpoint) or with ``engines=False``, the derived metrics alone; ``upb`` reads
    requests with upb alone (``LLMPULSE_C_READER=0``), the same build without its C reader."""
    grpc_port, http_port, admin_port = free_port(), free_port(), free_port()
    state = Path(tempfile.mkdtemp(prefix="llmpulse-bench-"))
    config = state / "processor.toml"
    config.write_text(
        f'[quality]\ndb_path = "{state / "quality.db"}"\n'
        + ("" if engines else "enabled = false\n[drift]\nenabled = false\n")
    )
    argv = [
        sys.executable, "-m", "llmpulse.cli", "--log-level", "WARNING", "serve", "--config", str(config),
        "--grpc-port", str(grpc_port), "--http-port", str(http_port), "--admin-port", str(admin_port),
        "--max-request-bytes", str(64 << 20),
    ]  # fmt: skip
    url = f"http://127.0.0.1:{admin_port}/metrics"

    def counts() -> tuple[float, float]:
        text = scrape(url)
        return (
            metric_sum(text, "llmpulse_processor_spans_accepted_total"),
            metric_sum(text, "llmpulse_processor_spans_rejected_total"),
        )

    name = (
        ("llmpulse processor" if engines else "processor, metrics")
        + (" upb" if upb else "")
        + ("" if shape == "llmpulse" else f" [{shape}]")
    )
    env = {**os.environ, LLMPULSE_C_READER: "0"} if upb else None
    return run_target(
        name, argv, grpc_port, counts, spans=spans, concurrency=concurrency, shape=shape, env=env
    )


def bench_collector(binary: Path, spans: int, concurrency: int) -> Result:
    """Run the collector (otlp -> batch -> nop) under the same load."""
    grpc_port, metrics_port = free_port(), free_port()
    config = Path(tempfile.mkdtemp(prefix="llmpulse-bench-")) / "collector.yaml"
    config.write_text(COLLECTOR_CONFIG.format(grpc=grpc_port, metrics=metrics_port))
    url = f"http://127.0.0.1:{metrics_port}/metrics"

    def counts() -> tuple[float, float]:
        text = scrape(url)

        # recent collectors drop the _total suffix; accept both spellings
        def both(name: str) -> float:
            return metric_sum(text, name) + metric_sum(text, name + "_total")

        return (
            both("otelcol_receiver_accepted_spans"),
            both("otelcol_receiver_refused_spans") + both("otelcol_receiver_failed_spans"),
        )

    argv = [str(binary), "--config", str(config)]
    return run_target("otel collector", argv, grpc_port, counts, spans=spans, concurrency=concurrency)


def print_report(results: list[Result]) -> None:
    """Print the figures and the accounting check."""
    header = (
        f"{'target':<28} {'spans':>9} {'wall s':>7} {'spans/s':>9} {'cpu s':>7} {'spans/s/core':>12} "
        f"{'peak RSS MB':>11} {'accepted':>9} {'rejected':>8} {'unaccounted':>11} {'retries':>7}"
    )
    print(header)
    for r in results:
        print(
            f"{r.name:<28} {r.sent:>9} {r.wall_s:>7.1f} {r.sent / r.wall_s:>9.0f} {r.cpu_s:>7.1f} "
            f"{r.per_core:>12.0f} "
            f"{r.peak_rss_mb:>11.1f} {r.accepted:>9} {r.rejected:>8} {r.unaccounted:>11} {r.retries:>7}"
        )
    for r in results:
        quarters = (
            [r.rss_samples_mb[int(len(r.rss_samples_mb) * q)] for q in (0.25, 0.5, 0.75)]
            if r.rss_samples_mb
            else []
        )
        print(
            f"RSS during run ({r.name}), at 25/50/75% of the samples: "
            + ", ".join(f"{x:.1f} MB" for x in quarters)
        )
    collector = next((r for r in results if r.name == "otel collector"), None)
    if collector is not None and collector.per_core:
        for r in results:
            if r is not collector:
                print(f"ratio {r.name} / collector (spans/s per core): {r.per_core / collector.per_core:.2f}")
    share = 1 - 1 / STEP_EVERY
    for r in results:
        llm_share = 1.0 if "[peer]" in r.name else share
        print(
            f"LLM spans/s per core ({r.name}; {llm_share:.0%} of spans are LLM spans): "
            f"{r.per_core * llm_share:.0f}"
        )
    for r in results:
        status = "OK" if r.unaccounted == 0 else "MISMATCH"
        print(
            f"accounting {r.name}: sent {r.sent} = accepted {r.accepted} + rejected {r.rejected} -> {status}"
        )


def main(argv: list[str] | None = None) -> int:
    """Command-line entry; exit 1 when any span is unaccounted."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--spans", type=int, default=2_000_000, help="spans per target (default: %(default)s)"
    )
    parser.add_argument(
        "--concurrency", type=int, default=8, help="export calls in flight (default: %(default)s)"
    )
    parser.add_argument(
        "--collector",
        type=Path,
        default=Path(os.environ.get(LLMPULSE_COLLECTOR_BIN, DEFAULT_COLLECTOR)),
        help="collector binary (env LLMPULSE_COLLECTOR_BIN; default: .cache/collector/llmpulse-otelcol)",
    )
    parser.add_argument("--only", choices=["processor", "collector"], help="benchmark one target only")
    parser.add_argument("--json", action="store_true", help="also print the figures as JSON")
    parser.add_argument(
        "--shape",
        choices=("llmpulse", "peer", "both"),
        default="llmpulse",
        help="span shape for the processor runs: llmpulse's own spans, the official GenAI "
        "instrumentation's (peer), or both in the same run (default: %(default)s)",
    )
    parser.add_argument(
        "--upb-baseline",
        action="store_true",
        help="also run the as-shipped processor with LLMPULSE_C_READER=0 (upb alone), per shape",
    )
    args = parser.parse_args(argv)
    if args.only != "processor" and not args.collector.is_file():
        print(
            f"bench: collector binary not found at {args.collector}; run scripts/bootstrap.sh",
            file=sys.stderr,
        )
        return 2
    results: list[Result] = []
    if args.only != "collector":
        shapes = ("llmpulse", "peer") if args.shape == "both" else (args.shape,)
        for shape in shapes:
            results.append(bench_processor(args.spans, args.concurrency, shape=shape))
            # same-run baseline: the processor without the quality and drift engines
            results.append(bench_processor(args.spans, args.concurrency, engines=False, shape=shape))
            if args.upb_baseline:
                results.append(bench_processor(args.spans, args.concurrency, shape=shape, upb=True))
    if args.only != "processor":
        results.append(bench_collector(args.collector, args.spans, args.concurrency))
    print(f"cores: {os.cpu_count()}  python: {sys.version.split()[0]}  spans per target: {args.spans}")
    print_report(results)
    if args.json:
        print(
            json.dumps(
                [{**r.__dict__, "per_core": r.per_core, "unaccounted": r.unaccounted} for r in results]
            )
        )
    return 0 if all(r.unaccounted == 0 for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
