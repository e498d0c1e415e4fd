"""llmpulse's exceptions: one root, one configuration error (standard library only).

Every exception llmpulse raises on purpose derives from :class:`LLMPulseError`, so
``except LLMPulseError`` catches all of them. Each keeps the built-in base it had before the
root existed (``ValueError``, ``RuntimeError``), so code that catches those still does. The
classes live next to the code that raises them; only the root and :class:`ConfigError`, which
the instrumentation, the processor and the engines share, live here::

    LLMPulseError
    ├── ConfigError (ValueError)               a setting is missing, malformed or inconsistent
    │   └── QualityConfigError                 processor.quality.settings: [quality]/[canary] tables
    ├── PipelineError                          processor.pipeline.queue: a request cannot be taken now
    │   ├── QueueFull                          retry after ``retry_after`` seconds
    │   └── ShuttingDown
    ├── StartupError (RuntimeError)            processor.service: a port is taken, TLS does not load
    ├── StatusError (RuntimeError)             processor.admin.status_client: ``llmpulse status``
    ├── JudgeError                             processor.quality.judge (tree drawn there)
    ├── EmbedderError                          processor.drift.embedders
    │   ├── EmbedderUnavailable
    │   ├── EmbedderBudgetExhausted
    │   └── EmbedderResponseError
    ├── DriftCommandError (RuntimeError)       processor.drift.cli: ``llmpulse drift ...``
    ├── BodyTooLarge                           processor.http_server: request body over the limit
    ├── ComponentError (RuntimeError)          stack.components: a component did not start
    │   └── ComponentMissing                   its binary is not installed (the message says how)
    ├── StackFilesMissing (FileNotFoundError)  stack.files: the rules or configs `up` reads are not there
    └── DemoError (RuntimeError)               demo.runner: the demo could not run

The instrumentation raises none of these into the host application: bad instrumentation
settings fall back to defaults with a warning, and its own failures are logged and dropped.
"""

from __future__ import annotations

__all__ = ["ConfigError", "LLMPulseError"]


class LLMPulseError(Exception):
    """The root of every exception llmpulse raises on purpose."""


class ConfigError(LLMPulseError, ValueError):
    """A setting is missing, malformed or inconsistent; the message says which and how to fix it."""
