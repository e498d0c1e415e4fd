"""llmpulse: production monitoring for LLM applications.

The application-facing API (``context``, ``step``, ``agent``, ``tool``, ``feedback``, ``instrument``)
lives in :mod:`llmpulse.instrumentation` and is re-exported here on first use,
so ``import llmpulse`` stays cheap and free of side effects.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

_INSTRUMENTATION_EXPORTS = frozenset(
    {"agent", "context", "step", "tool", "feedback", "instrument", "uninstrument"}
)

__all__ = ["__version__", "agent", "context", "feedback", "instrument", "step", "tool", "uninstrument"]


def __getattr__(name: str) -> Any:
    if name in _INSTRUMENTATION_EXPORTS:
        from llmpulse import instrumentation

        return getattr(instrumentation, name)
    raise AttributeError(f"module 'llmpulse' has no attribute {name!r}")
