"""``LLMPulseInstrumentor``: installs and removes the request hooks.

It is the ``opentelemetry_instrumentor`` entry point, so ``opentelemetry-instrument`` picks
it up, and what ``instrument()`` / ``uninstrument()`` drive. ``BaseInstrumentor`` makes it a
singleton and makes ``instrument()`` idempotent; ``uninstrument()`` restores the SDK
methods exactly. Each supported SDK is optional: one that is not installed is skipped.
"""

from __future__ import annotations

import functools
import importlib
import logging
import os
from collections.abc import Collection
from types import ModuleType
from typing import Any

from opentelemetry import trace
from opentelemetry.instrumentation.instrumentor import BaseInstrumentor  # type: ignore[attr-defined]
from wrapt import register_post_import_hook

import llmpulse
from llmpulse.contract.pricing import PricingTable
from llmpulse.instrumentation.calls import Runtime
from llmpulse.instrumentation.config import Settings
from llmpulse.instrumentation.content import ContentPolicy
from llmpulse.instrumentation.hook import Adapter, Switch, async_request_wrapper, sync_request_wrapper
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
    _wrapped: list[tuple[Any, Any, Any, Switch]]
    _adapters: list[Adapter]

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
        self._runtime = runtime
        self._wrapped = []
        self._adapters = []
        for package, module_name in _HOOKS.items():
            # Hooked when the application imports the SDK (at once if it already has), so a
            # process that never uses it does not pay for importing it at start-up.
            register_post_import_hook(functools.partial(self._hook_sdk, runtime, module_name), package)
        if settings.propagate_to_threads:
            instrument_threads()

    def _hook_sdk(self, runtime: Runtime, module_name: str, package_module: ModuleType) -> None:
        """Post-import hook of an SDK's top-level package (its submodules are complete by then)."""
        active = self._runtime
        if active is None or active is not runtime:  # uninstrumented (or re-instrumented) before the import
            return
        package = package_module.__name__
        try:
            module = importlib.import_module(module_name)
            adapter = _adapter(package, active.settings)
        except Exception:
            _log.warning("event=instrumentation_unsupported package=%s effect=calls_not_recorded", package)
            _log.debug("event=adapter_failed package=%s", package, exc_info=True)
            return
        for cls_name, factory in (
            ("SyncAPIClient", sync_request_wrapper),
            ("AsyncAPIClient", async_request_wrapper),
        ):
            cls = getattr(module, cls_name, None)
            if cls is None or not callable(getattr(cls, "request", None)):
                _log.warning(
                    "event=instrumentation_target_missing target=%s.%s.request package=%s",
                    module.__name__,
                    cls_name,
                    package,
                )
                continue
            own = cls.__dict__.get("request")  # None when inherited
            switch = Switch()
            patched = factory(runtime, adapter, cls.request, switch)
            cls.request = patched
            self._wrapped.append((cls, own, patched, switch))
        self._adapters.append(adapter)

    def _uninstrument(self, **kwargs: Any) -> None:
        for cls, own, patched, switch in reversed(self._wrapped):
            switch.on = False
            if cls.__dict__.get("request") is not patched:  # patched again on top: ours only forwards now
                _log.info(
                    "event=uninstrument_skipped target=%s.request reason=patched_again_after_llmpulse", cls
                )
            elif own is None:
                del cls.request
            else:
                cls.request = own
        for adapter in self._adapters:
            restore = getattr(adapter, "restore", None)
            if restore is not None:
                restore()
        runtime = self._runtime
        if runtime is not None and runtime.settings.propagate_to_threads:
            uninstrument_threads()
        self._wrapped = []
        self._adapters = []
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
