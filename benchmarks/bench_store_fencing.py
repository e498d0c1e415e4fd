"""Benchmark: what owner-epoch fencing costs a chart save, on a real PostgreSQL (and SQLite).

One throwaway PostgreSQL cluster (``llmpulse.stack.postgres.PostgresCluster``) and a SQLite file.
For each store, in the same run: ``--saves`` saves of ``--keys`` (service, feature) keys with 6
chart snapshots each (the statistics of a busy feature), first **unfenced** (the keys never
claimed: one processor, as before), then **fenced** (every key claimed: a Kafka owner, each save
checks the key's epoch row ``FOR SHARE`` before writing). Printed: the median wall time of one
save, the benchmark process's CPU seconds over all saves, and (PostgreSQL) the server's CPU
seconds from its processes' ``/proc`` counters. Saves run every 15 s per replica in production,
so the figure that matters is the extra time per save, not throughput.

Usage: ``python benchmarks/bench_store_fencing.py [--keys 20] [--saves 200]``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from llmpulse.processor.store.factory import open_store
from llmpulse.processor.store.protocols import ChartSnapshots
from llmpulse.stack.postgres import PostgresCluster

STATISTICS = (
    "judge_score",
    "error_rate",
    "refusal_rate",
    "latency_p95_seconds",
    "cost_per_request_usd",
    "session_judge_score",
)
_TICK = os.sysconf("SC_CLK_TCK")


def _server_cpu(pid: int | None) -> float:
    """CPU seconds of the PostgreSQL server and its children (backends) so far."""
    if pid is None:
        return 0.0
    total = 0.0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(entry.name) == pid or int(fields[1]) == pid:  # fields[1]: the parent's pid
            total += (int(fields[11]) + int(fields[12])) / _TICK
    return total


def _charts(keys: list[tuple[str, str]], n: int) -> dict[tuple[str, str, str], dict[str, object]]:
    return {
        (*key, stat): {"index": n, "ewma": 0.5 + n * 1e-6, "baseline": {"mean": 0.5}}
        for key in keys
        for stat in STATISTICS
    }


def _run(
    charts: ChartSnapshots, keys: list[tuple[str, str]], saves: int, server: Callable[[], float]
) -> tuple[float, float, float]:
    """(median ms per save, process CPU s, server CPU s) over ``saves`` saves."""
    times = []
    cpu, srv = time.process_time(), server()
    for n in range(saves):
        start = time.perf_counter()
        refused = charts.save_charts(_charts(keys, n))
        times.append(time.perf_counter() - start)
        assert refused == [], refused
    return statistics.median(times) * 1000, time.process_time() - cpu, server() - srv


def _measure(name: str, location: str, keys: int, saves: int, server: Callable[[], float]) -> None:
    with open_store(location) as unfenced_store, open_store(location) as fenced_store:
        unfenced = [(f"svc-{i % 3}", f"feature-{i}") for i in range(keys)]
        fenced = [(f"svc-{i % 3}", f"owned-{i}") for i in range(keys)]
        fenced_store.charts.claim(fenced)
        _run(unfenced_store.charts, unfenced, 5, server)  # warm the connections up
        _run(fenced_store.charts, fenced, 5, server)
        rows = []
        for label, store, chosen in (
            ("unfenced", unfenced_store, unfenced),
            ("fenced", fenced_store, fenced),
        ):
            rows.append((label, *_run(store.charts, chosen, saves, server)))
    base = rows[0][1]
    for label, ms, cpu, srv in rows:
        server_text = f"{srv:6.2f}" if name == "postgresql" else "     -"
        print(f"{name:<10} {label:<9} {ms:8.2f} {ms / base:6.2f} {cpu:8.2f} {server_text}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--keys", type=int, default=20, help="(service, feature) keys per save (default 20)")
    parser.add_argument("--saves", type=int, default=200, help="saves per variant (default 200)")
    args = parser.parse_args(argv)
    print(f"{args.keys} keys x {len(STATISTICS)} charts per save, {args.saves} saves per variant")
    print(f"{'store':<10} {'variant':<9} {'ms/save':>8} {'x base':>6} {'cpu s':>8} {'server':>6}")
    cluster = PostgresCluster().start()
    try:
        _measure("postgresql", cluster.url(), args.keys, args.saves, lambda: _server_cpu(cluster.pid))
    finally:
        cluster.stop()
    with tempfile.TemporaryDirectory() as tmp:
        _measure("sqlite", str(Path(tmp) / "quality.db"), args.keys, args.saves, lambda: 0.0)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
