"""The span export llmpulse installs: spans outlive a collector outage of a minute or two.

The SDK's defaults lose spans when the collector is away for more than a few seconds: the OTLP
exporter gives up on a batch after its 10 s timeout (``OTEL_EXPORTER_OTLP_TIMEOUT``) and the
batch processor's queue holds 2048 spans. What llmpulse sets instead, when it installs the
tracer provider itself (:func:`~llmpulse.instrumentation.setup.install_otlp_provider`):

* :class:`PatientExporter` around the OTLP exporter: a batch the collector could not take is
  tried again, with backoff from 1 s up to 5 s, for :data:`RETRY_SECONDS` (120 s) in all; the
  exporter's own retries run inside each try. Shutdown stops the waiting at once.
* the batch processor's queue at :data:`QUEUE_SPANS` (32768) spans unless
  ``OTEL_BSP_MAX_QUEUE_SIZE`` says otherwise: while a batch waits the application keeps
  producing, and spans past the queue are dropped by the SDK (its own counted drop). An outage
  of ``T`` seconds at ``R`` spans/s needs ``T * R`` spans of queue: 30 s at 1000 spans/s fits.

Retrying a batch the collector did receive but did not acknowledge (a response lost in a
crash) can count it twice; the collector's answer comes after its own queue has the batch
(``file_storage``), so that window is the instant between the two.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

from llmpulse.contract.environment_variables import OTEL_BSP_MAX_QUEUE_SIZE

__all__ = ["QUEUE_SPANS", "RETRY_SECONDS", "PatientExporter", "queue_spans", "span_processor"]

_log = logging.getLogger(__name__)

RETRY_SECONDS = 120.0
"""How long one batch is tried before it is dropped."""
QUEUE_SPANS = 32_768
"""The batch processor's queue when ``OTEL_BSP_MAX_QUEUE_SIZE`` is not set."""
_FIRST_BACKOFF = 1.0
_MAX_BACKOFF = 5.0


def queue_spans(environ: Mapping[str, str]) -> int:
    """``OTEL_BSP_MAX_QUEUE_SIZE`` when set to a positive integer, else :data:`QUEUE_SPANS`."""
    raw = environ.get(OTEL_BSP_MAX_QUEUE_SIZE, "").strip()
    if raw.isdigit() and int(raw) > 0:
        return int(raw)
    return QUEUE_SPANS


def span_processor(exporter: SpanExporter, environ: Mapping[str, str]) -> BatchSpanProcessor:
    """The batch processor llmpulse installs around ``exporter`` (see the module)."""
    return BatchSpanProcessor(PatientExporter(exporter), max_queue_size=queue_spans(environ))


class PatientExporter(SpanExporter):
    """Retries ``inner.export`` on failure for up to ``retry_seconds`` (see the module)."""

    def __init__(
        self,
        inner: SpanExporter,
        *,
        retry_seconds: float = RETRY_SECONDS,
        first_backoff: float = _FIRST_BACKOFF,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._inner = inner
        self._retry_seconds = retry_seconds
        self._first_backoff = first_backoff
        self._clock = clock
        self._stopping = threading.Event()

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        """Export ``spans``, trying again while the collector cannot take them."""
        deadline = self._clock() + self._retry_seconds
        backoff = self._first_backoff
        while True:
            try:
                result = self._inner.export(spans)
            except Exception:  # the exporter's own failure: treated as a failed try
                _log.debug("event=export_failed", exc_info=True)
                result = SpanExportResult.FAILURE
            if result is SpanExportResult.SUCCESS or self._stopping.is_set():
                return result
            if self._clock() + backoff > deadline:
                _log.warning(
                    "event=spans_dropped spans=%d after_seconds=%.0f", len(spans), self._retry_seconds
                )
                return result
            if self._stopping.wait(backoff):
                return result
            backoff = min(backoff * 2, _MAX_BACKOFF)

    def shutdown(self) -> None:
        """Stop retrying and shut the inner exporter down."""
        self._stopping.set()
        self._inner.shutdown()

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        """Flush the inner exporter."""
        return self._inner.force_flush(timeout_millis)
