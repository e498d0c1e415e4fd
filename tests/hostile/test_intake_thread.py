"""The pieces that keep the gRPC intake answering under overload: its loop thread, how late that
loop runs, the worker giving way to it, and the interpreter settings ``llmpulse serve`` applies."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import threading
import time

import pytest

from llmpulse.processor.ingest.loop_thread import TICK_SECONDS, LoopThread
from llmpulse.processor.metrics.derived import Accounting, DerivedMetrics
from llmpulse.processor.metrics.windows import RollingWindows
from llmpulse.processor.pipeline.queue import Pipeline, QueueFull, ShuttingDown
from llmpulse.testing.otlp import llm_attributes, make_request, make_span


async def test_a_loop_thread_runs_coroutines_on_its_own_thread_and_stops() -> None:
    intake = LoopThread("test-intake")
    intake.start()

    async def where() -> str:
        await asyncio.sleep(0)
        return threading.current_thread().name

    assert await intake.run(where()) == "test-intake"
    thread = next(t for t in threading.enumerate() if t.name == "test-intake")
    intake.stop()
    assert not thread.is_alive()
    with pytest.raises(RuntimeError, match="not running"):
        await intake.run(where())


def test_ticks_due_while_stopping_raise_nothing() -> None:
    """``stop`` clears ``loop`` before the thread's loop runs its last turns: a tick due in that
    window must not fail (it did, as an AssertionError traceback on stderr of a `serve` that
    stopped at start-up, e.g. on unreachable Kafka brokers)."""
    intake = LoopThread("test-stopping")
    intake.start()
    loop = intake.loop
    assert loop is not None
    errors: list[dict[str, object]] = []
    loop.call_soon_threadsafe(loop.set_exception_handler, lambda _loop, context: errors.append(context))
    time.sleep(2 * TICK_SECONDS)
    intake.loop = None  # the first half of stop(), held open for a few ticks
    time.sleep(6 * TICK_SECONDS)
    intake.loop = loop
    intake.stop()
    assert errors == []


def test_the_lag_shows_a_thread_kept_from_the_interpreter() -> None:
    intake = LoopThread("test-lag")
    intake.start()
    try:
        time.sleep(5 * TICK_SECONDS)  # the loop ticks freely
        assert intake.lag < 1.0
        held = time.monotonic()
        sum(range(20_000_000))  # one C call: holds the GIL throughout, the loop cannot tick
        kept = time.monotonic() - held
        assert intake.lag >= kept - 2 * TICK_SECONDS
    finally:
        intake.stop()


def _pipeline() -> Pipeline:
    return Pipeline(
        capacity=100,
        derived=DerivedMetrics(),
        accounting=Accounting(100),
        windows=RollingWindows(),
        max_delay=1.0,
    )


async def test_admission_reads_the_queue_and_counts_nothing() -> None:
    pipeline = _pipeline()
    assert pipeline.admission() is None
    assert isinstance(pipeline.admission(pending=100), QueueFull)  # handed over, not yet queued
    pipeline.close()
    refusal = pipeline.admission()
    assert isinstance(refusal, ShuttingDown)
    assert sum(pipeline.accounting.refused_requests.values()) == 0
    pipeline.count_refusal("grpc", refusal)
    refused = pipeline.accounting.refused_requests
    assert sum(refused.values()) == refused["grpc", "shutting_down"] == 1


async def test_the_worker_gives_the_interpreter_to_a_lagging_intake(monkeypatch: pytest.MonkeyPatch) -> None:
    """While the intake says it is behind, the worker sleeps (releasing the GIL) between slices."""
    sleeps: list[float] = []
    real_sleep = time.sleep
    monkeypatch.setattr(time, "sleep", lambda s: (sleeps.append(s), real_sleep(s)))
    request = make_request([make_span(llm_attributes(), span_id=i.to_bytes(8, "big")) for i in range(1, 400)])
    for behind in (False, True):
        sleeps.clear()
        pipeline = _pipeline()
        pipeline.capacity = 1000
        pipeline.watch_intake(lambda behind=behind: 1.0 if behind else 0.0)
        pipeline.start()
        await pipeline.submit(request, 399, "grpc")
        await pipeline.drain(1.0)
        assert pipeline.accounting.accepted["llm"] == 399
        assert bool(sleeps) is behind, sleeps


def test_serve_tunes_the_interpreter() -> None:
    """``tune_interpreter`` (called by ``llmpulse serve`` after start-up; process-wide, so run in
    a process of its own here)."""
    probe = (
        "import gc, json, sys\n"
        "from llmpulse.processor.cli import GC_THRESHOLDS, SWITCH_INTERVAL, tune_interpreter\n"
        "tune_interpreter()\n"
        "print(json.dumps([sys.getswitchinterval(), gc.get_threshold(), list(GC_THRESHOLDS),\n"
        "                  SWITCH_INTERVAL, gc.get_freeze_count()]))\n"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    switch, thresholds, wanted, wanted_switch, frozen = json.loads(out)
    assert switch == pytest.approx(wanted_switch)
    assert thresholds == wanted
    assert frozen > 1000  # the modules imported so far are out of the collector's reach
