"""PatientExporter: a batch the collector could not take is tried again, within a budget."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from llmpulse.contract.environment_variables import OTEL_BSP_MAX_QUEUE_SIZE
from llmpulse.instrumentation.export import QUEUE_SPANS, PatientExporter, queue_spans, span_processor


class _Flaky(SpanExporter):
    """Fails (or raises) ``failures`` times, then succeeds; records every try."""

    def __init__(self, failures: int, *, raises: bool = False) -> None:
        self.failures = failures
        self.raises = raises
        self.tries = 0
        self.shut = False

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.tries += 1
        if self.tries <= self.failures:
            if self.raises:
                raise ConnectionError("collector away")
            return SpanExportResult.FAILURE
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        self.shut = True


def test_a_failed_batch_is_tried_again_until_it_goes_through() -> None:
    inner = _Flaky(3)
    assert PatientExporter(inner, first_backoff=0.01).export([]) is SpanExportResult.SUCCESS
    assert inner.tries == 4


def test_an_exporter_that_raises_is_a_failed_try_not_an_error() -> None:
    inner = _Flaky(2, raises=True)
    assert PatientExporter(inner, first_backoff=0.01).export([]) is SpanExportResult.SUCCESS
    assert inner.tries == 3


def test_the_batch_is_given_up_after_the_budget() -> None:
    inner = _Flaky(10**9)
    started = time.monotonic()
    assert (
        PatientExporter(inner, retry_seconds=0.2, first_backoff=0.05).export([]) is SpanExportResult.FAILURE
    )
    assert time.monotonic() - started < 2.0
    assert 2 <= inner.tries < 10


def test_shutdown_ends_the_wait_at_once() -> None:
    inner = _Flaky(10**9)
    exporter = PatientExporter(inner, retry_seconds=60, first_backoff=30)
    results: list[SpanExportResult] = []
    thread = threading.Thread(target=lambda: results.append(exporter.export([])))
    thread.start()
    time.sleep(0.1)
    exporter.shutdown()
    thread.join(timeout=5)
    assert not thread.is_alive() and results == [SpanExportResult.FAILURE]
    assert inner.shut


def test_queue_size_from_the_environment_or_llmpulse_default() -> None:
    assert queue_spans({}) == QUEUE_SPANS
    assert queue_spans({OTEL_BSP_MAX_QUEUE_SIZE: "500"}) == 500
    assert queue_spans({OTEL_BSP_MAX_QUEUE_SIZE: "lots"}) == QUEUE_SPANS
    processor = span_processor(_Flaky(0), {})
    processor.shutdown()
