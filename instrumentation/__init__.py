"""llmpulse instrumentation: LLM calls, pipeline steps and feedback as OpenTelemetry spans.

Public API (also re-exported from ``llmpulse``):

* :func:`instrument` / :func:`uninstrument` - hook the ``openai`` and ``anthropic`` clients.
* :class:`context` - application context (feature, session, user, prompt version) for every
  span below it.
* :class:`step` - a span for one pipeline step, e.g. ``step("retrieval")``.
* :class:`agent` / :class:`tool` - semconv ``invoke_agent`` / ``execute_tool`` spans for a
  hand-rolled agent loop.
* :func:`feedback` - explicit feedback and implicit signals as spans.
* :class:`LLMPulseInstrumentor` - the ``opentelemetry_instrumentor`` entry point.
* :func:`autostart` - what ``LLMPULSE_ENABLED=1`` runs at interpreter start.
"""

from __future__ import annotations

from typing import Any

from opentelemetry.trace import TracerProvider

from llmpulse.instrumentation.agents import agent, tool
from llmpulse.instrumentation.config import Settings
from llmpulse.instrumentation.context import context
from llmpulse.instrumentation.feedback import feedback
from llmpulse.instrumentation.instrumentor import LLMPulseInstrumentor
from llmpulse.instrumentation.setup import autostart
from llmpulse.instrumentation.steps import step

__all__ = [
    "LLMPulseInstrumentor",
    "Settings",
    "agent",
    "autostart",
    "context",
    "feedback",
    "instrument",
    "step",
    "tool",
    "uninstrument",
]


def instrument(
    *, tracer_provider: TracerProvider | None = None, settings: Settings | None = None, **options: Any
) -> None:
    """Record every ``openai`` / ``anthropic`` call as a span. Idempotent.

    ``settings`` defaults to the environment (:meth:`Settings.from_env`) with ``options``
    (any :class:`Settings` field, e.g. ``content="on"``) applied on top.
    """
    import os

    if settings is None:
        settings = Settings.from_env(os.environ, **options)
    LLMPulseInstrumentor().instrument(tracer_provider=tracer_provider, settings=settings)


def uninstrument() -> None:
    """Undo :func:`instrument`: the SDK methods are restored exactly."""
    LLMPulseInstrumentor().uninstrument()
