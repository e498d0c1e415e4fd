"""llmpulse: production monitoring for LLM applications.

The application-facing API (``context``, ``step``, ``feedback``, ``instrument``)
lives in :mod:`llmpulse.instrumentation` and is re-exported here on first use,
so ``import llmpulse`` stays cheap and free of side effects.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

_INSTRUMENTATION_EXPORTS = frozenset({"context", "step", "feedback", "instrument", "uninstrument"})

__all__ = ["__version__", "context", "feedback", "instrument", "step", "uninstrument"]


def __getattr__(name: str) -> Any:
    if name in _INSTRUMENTATION_EXPORTS:
        from llmpulse import instrumentation

        return getattr(instrumentation, name)
    raise AttributeError(f"module 'llmpulse' has no attribute {name!r}")
