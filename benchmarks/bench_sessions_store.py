"""Benchmark: the captured-session writer's cost in the store, as the store fills up.

What :class:`~llmpulse.processor.agents.capture.SessionCapture` does per batch, on a real SQLite
file: store each closed session (its row and its turns, content redacted) and then prune the
store to its byte bound (one aggregate over every session's size when nothing must go; a scan
of every row when some must). Measured in CPU seconds of this thread, in steps of ``--step``
sessions until ``--sessions`` are stored, so the growth with the row count shows: adding, per
session; the prune with nothing to drop, per call (the writer prunes at most every 5 s); the
prune that drops the oldest session, per call. Same-run baseline: storing the same content as
flagged samples (``FlaggedSamples.add_many``, one per turn, the store's existing write path).

Usage: ``python benchmarks/bench_sessions_store.py [--sessions 20000] [--step 5000] [--turns 3]``.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from llmpulse.processor.quality.store import FlaggedRecord
from llmpulse.processor.store.factory import open_store
from llmpulse.processor.store.sessions import SessionRecord, TurnRecord

BATCH = 64  # the writer's batch
TEXT = "How do I reset my password? I looked under Settings and found nothing of the kind. " * 4


def _session(n: int, turns: int) -> SessionRecord:
    transcript = tuple(
        TurnRecord(
            (n * 100 + t).to_bytes(16, "big"), TEXT, TEXT, 1.8e9 + n, 0.5, "gpt-4o-mini", 1, 100, 50, 1e-4
        )
        for t in range(turns)
    )
    return SessionRecord(
        "shop", "support", f"conv-{n}", 1.8e9 + n, 1.8e9 + n + 1, turns, transcript[-1].trace_id, transcript
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sessions", type=int, default=20_000)
    parser.add_argument("--step", type=int, default=5_000)
    parser.add_argument("--turns", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        store = open_store(str(Path(tmp) / "bench.db"), retention_days=3650)
        log = store.sessions
        print(
            f"{'stored':>8} {'add us/session':>15} {'prune us (none)':>16} {'prune us (drop 1)':>18}"
            f" {'flagged add us/session':>23}"
        )
        done = 0
        while done < args.sessions:
            add_s = prune_s = flagged_s = 0.0
            calls = 0
            for start in range(done, done + args.step, BATCH):
                batch = [_session(n, args.turns) for n in range(start, start + BATCH)]
                t0 = time.thread_time()
                for record in batch:
                    log.add_session(record, now=record.ended)
                t1 = time.thread_time()
                log.prune_sessions(max_bytes=10**12, now=1.8e9)  # one aggregate, nothing to drop
                t2 = time.thread_time()
                store.flagged.add_many(
                    [
                        FlaggedRecord(
                            "support",
                            "gpt-4o-mini",
                            t.trace_id,
                            ("check",),
                            (),
                            1.8e9,
                            input=TEXT,
                            output=TEXT,
                        )
                        for record in batch
                        for t in record.transcript
                    ]
                )
                t3 = time.thread_time()
                add_s, prune_s, flagged_s = add_s + t1 - t0, prune_s + t2 - t1, flagged_s + t3 - t2
                calls += 1
            done = log.count_sessions()
            total = done * _session(0, args.turns).content_bytes
            t0 = time.thread_time()
            dropped = log.prune_sessions(max_bytes=total - 1, now=1.8e9)
            drop_s = time.thread_time() - t0
            assert dropped == 1, dropped
            done -= 1
            per = 1e6 / (calls * BATCH)
            print(
                f"{done:>8} {add_s * per:>15.0f} {prune_s * 1e6 / calls:>16.0f} {drop_s * 1e6:>18.0f}"
                f" {flagged_s * per:>23.0f}"
            )
        store.close()


if __name__ == "__main__":
    main()
