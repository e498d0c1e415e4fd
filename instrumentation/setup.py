"""Zero-code start-up: ``autostart()``, called from the ``.pth`` hook when ``LLMPULSE_ENABLED`` is set.

At interpreter start the application has not configured OpenTelemetry yet, so the tracer is
resolved on first use: if the application has set a tracer provider by then, llmpulse uses
it; otherwise llmpulse installs one that exports OTLP as the standard ``OTEL_*`` variables
say (``OTEL_EXPORTER_OTLP_ENDPOINT``, default ``localhost:4317``;
``OTEL_EXPORTER_OTLP[_TRACES]_PROTOCOL`` ``grpc`` or ``http/protobuf``; ``OTEL_SERVICE_NAME``),
with retries and a queue that outlast a collector outage (:mod:`llmpulse.instrumentation.export`).
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Mapping
from typing import Any

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SpanExporter

import llmpulse
from llmpulse.contract.environment_variables import (
    OTEL_EXPORTER_OTLP_PROTOCOL,
    OTEL_EXPORTER_OTLP_TRACES_PROTOCOL,
)
from llmpulse.instrumentation.config import Settings
from llmpulse.instrumentation.export import span_processor
from llmpulse.instrumentation.instrumentor import SCOPE, LLMPulseInstrumentor

_log = logging.getLogger(__name__)


def autostart() -> None:
    """Instrument from the environment alone. Never raises."""
    try:
        environ = dict(os.environ)
        settings = Settings.from_env(environ)
        tracer = DeferredTracer(lambda: install_otlp_provider(environ))
        LLMPulseInstrumentor().instrument(settings=settings, tracer=tracer)
    except Exception:
        _log.debug("event=autostart_failed", exc_info=True)


def install_otlp_provider(environ: Mapping[str, str]) -> trace.TracerProvider:
    """Set (and return) a global SDK tracer provider exporting OTLP per the ``OTEL_*`` variables."""
    provider = TracerProvider(resource=Resource.create())
    provider.add_span_processor(span_processor(_exporter(environ), environ))
    trace.set_tracer_provider(provider)
    return trace.get_tracer_provider()


def _exporter(environ: Mapping[str, str]) -> SpanExporter:
    protocol = (
        environ.get(OTEL_EXPORTER_OTLP_TRACES_PROTOCOL) or environ.get(OTEL_EXPORTER_OTLP_PROTOCOL) or "grpc"
    ).strip()
    if protocol.startswith("http"):
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpExporter

        return HttpExporter()
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcExporter

    return GrpcExporter()


class DeferredTracer(trace.Tracer):
    """A tracer that picks its provider on first use.

    The application's provider when it has set one by then, otherwise the one ``fallback``
    installs. After the first span it only forwards.
    """

    def __init__(self, fallback: Callable[[], trace.TracerProvider]) -> None:
        self._fallback = fallback
        self._tracer: trace.Tracer | None = None
        self._lock = threading.Lock()

    def _resolve(self) -> trace.Tracer:
        with self._lock:
            if self._tracer is None:
                provider = trace.get_tracer_provider()
                if isinstance(provider, trace.ProxyTracerProvider):
                    provider = self._fallback()
                self._tracer = provider.get_tracer(SCOPE, llmpulse.__version__)
            return self._tracer

    def start_span(self, *args: Any, **kwargs: Any) -> trace.Span:
        tracer = self._tracer or self._resolve()
        return tracer.start_span(*args, **kwargs)

    def start_as_current_span(self, *args: Any, **kwargs: Any) -> Any:
        tracer = self._tracer or self._resolve()
        return tracer.start_as_current_span(*args, **kwargs)
