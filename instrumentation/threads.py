"""Carry the OpenTelemetry context (trace parent and ``llmpulse.context`` attributes) into threads.

Python does not copy context variables into new threads, so without this a span started in
a worker thread would start a new trace and lose the application context. Like the
``opentelemetry-instrumentation-threading`` package, this wraps ``Thread.start``/``run`` and
``ThreadPoolExecutor.submit``; only the OpenTelemetry context is carried, no other context
variable.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent import futures
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry.instrumentation.utils import unwrap
from wrapt import wrap_function_wrapper

_CTX = "_llmpulse_otel_context"


def instrument_threads() -> None:
    """Install the wrappers (called by ``instrument()``)."""
    wrap_function_wrapper(threading.Thread, "start", _thread_start)
    wrap_function_wrapper(threading.Thread, "run", _thread_run)
    wrap_function_wrapper(futures.ThreadPoolExecutor, "submit", _executor_submit)


def uninstrument_threads() -> None:
    """Remove the wrappers."""
    unwrap(threading.Thread, "start")
    unwrap(threading.Thread, "run")
    unwrap(futures.ThreadPoolExecutor, "submit")


def _thread_start(
    wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Any:
    instance.__dict__[_CTX] = otel_context.get_current()
    return wrapped(*args, **kwargs)


def _thread_run(
    wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Any:
    ctx = instance.__dict__.pop(_CTX, None)
    if ctx is None:
        return wrapped(*args, **kwargs)
    token = otel_context.attach(ctx)
    try:
        return wrapped(*args, **kwargs)
    finally:
        otel_context.detach(token)


def _executor_submit(
    wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Any:
    ctx = otel_context.get_current()
    fn, *rest = args

    def run_in_context(*fn_args: Any, **fn_kwargs: Any) -> Any:
        token = otel_context.attach(ctx)
        try:
            return fn(*fn_args, **fn_kwargs)
        finally:
            otel_context.detach(token)

    return wrapped(run_in_context, *rest, **kwargs)
