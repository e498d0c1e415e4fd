"""``LLMPulseInstrumentor``: installs and removes the request hooks.

It is the ``opentelemetry_instrumentor`` entry point, so ``opentelemetry-instrument`` picks
it up, and what ``instrument()`` / ``uninstrument()`` drive. ``BaseInstrumentor`` makes it a
singleton and makes ``instrument()`` idempotent; ``uninstrument()`` restores the SDK
methods exactly. Each supported SDK is optional: one that is not installed is skipped.
"""

from __future__ import annotations

import importlib
import logging
import os
from collections.abc import Collection
from typing import Any

from opentelemetry import trace
from opentelemetry.instrumentation.instrumentor import BaseInstrumentor  # type: ignore[attr-defined]
from opentelemetry.instrumentation.utils import unwrap
from wrapt import wrap_function_wrapper

import llmpulse
from llmpulse.instrumentation.calls import Runtime
from llmpulse.instrumentation.config import Settings
from llmpulse.instrumentation.content import ContentPolicy
from llmpulse.instrumentation.hook import Adapter, async_request_wrapper, sync_request_wrapper
from llmpulse.instrumentation.pricing import PricingTable
from llmpulse.instrumentation.threads import instrument_threads, uninstrument_threads

_log = logging.getLogger(__name__)

SCOPE = "llmpulse.instrumentation"
# The SDK modules whose client base classes carry the single request method we hook.
_HOOKS = {"openai": "openai._base_client", "anthropic": "anthropic._base_client"}


class LLMPulseInstrumentor(BaseInstrumentor):
    """OpenTelemetry instrumentor for the ``openai`` and ``anthropic`` packages.

    ``instrument(tracer_provider=None, settings=None)``: ``settings`` defaults to
    :meth:`Settings.from_env`; the tracer comes from ``tracer_provider`` or the global one.
    """

    _runtime: Runtime | None = None
    _wrapped: tuple[tuple[Any, str], ...] = ()
    _adapters: tuple[Adapter, ...] = ()

    def instrumentation_dependencies(self) -> Collection[str]:
        return ()  # both SDKs are optional; each is hooked only when importable

    def _instrument(self, **kwargs: Any) -> None:
        settings = kwargs.get("settings") or Settings.from_env(os.environ)
        tracer = kwargs.get("tracer") or trace.get_tracer(
            SCOPE, llmpulse.__version__, tracer_provider=kwargs.get("tracer_provider")
        )
        runtime = Runtime(
            tracer=tracer,
            settings=settings,
            pricing=PricingTable.load(settings.pricing_file),
            content=ContentPolicy(settings),
        )
        wrapped: list[tuple[Any, str]] = []
        adapters: list[Adapter] = []
        for package, module_name in _HOOKS.items():
            try:
                module = importlib.import_module(module_name)
                adapter = _adapter(package, settings)
            except ImportError:
                _log.debug("llmpulse: %s is not installed; not instrumented", package)
                continue
            except Exception:
                _log.warning(
                    "llmpulse: this %s version is not supported; its calls are not recorded", package
                )
                _log.debug("adapter failure", exc_info=True)
                continue
            for cls_name, factory in (
                ("SyncAPIClient", sync_request_wrapper),
                ("AsyncAPIClient", async_request_wrapper),
            ):
                cls = getattr(module, cls_name, None)
                if cls is None or not hasattr(cls, "request"):
                    _log.warning(
                        "llmpulse: %s.%s.request not found; %s calls are not recorded",
                        module_name,
                        cls_name,
                        package,
                    )
                    continue
                wrap_function_wrapper(cls, "request", factory(runtime, adapter))
                wrapped.append((cls, "request"))
            adapters.append(adapter)
        if settings.propagate_to_threads:
            instrument_threads()
        self._wrapped = tuple(wrapped)
        self._adapters = tuple(adapters)
        self._runtime = runtime

    def _uninstrument(self, **kwargs: Any) -> None:
        for cls, name in self._wrapped:
            unwrap(cls, name)
        for adapter in self._adapters:
            restore = getattr(adapter, "restore", None)
            if restore is not None:
                restore()
        runtime = self._runtime
        if runtime is not None and runtime.settings.propagate_to_threads:
            uninstrument_threads()
        self._wrapped = ()
        self._adapters = ()
        self._runtime = None


def _adapter(package: str, settings: Settings) -> Adapter:
    if package == "openai":
        from llmpulse.instrumentation.openai_wrappers import OpenAIAdapter

        return OpenAIAdapter()
    from llmpulse.instrumentation.anthropic_wrappers import AnthropicAdapter

    return AnthropicAdapter(suppress_sdk_spans=settings.anthropic_sdk_spans == "suppress")


def active_runtime() -> Runtime | None:
    """The runtime of the active instrumentation, or ``None`` when not instrumented."""
    instance = LLMPulseInstrumentor._instance
    return instance._runtime if instance is not None else None
