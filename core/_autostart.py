"""Interpreter start-up hook, imported by ``llmpulse-autoinstrument.pth``.

The ``.pth`` line only reads ``LLMPULSE_ENABLED`` and imports this module when it is
set; this module decides whether the value means "on" and, if so, arranges for the
instrumentation to start; a value that means neither on nor off (``ture``) gets a one-line
warning naming the accepted values. It must never break interpreter start-up, so every failure is
logged and dropped.

Starting the instrumentation imports the OpenTelemetry SDK, ``opentelemetry-instrumentation``
and ``wrapt`` (~75 ms here), which every Python process of an environment with the variable
set would pay, ``pip`` and shell one-liners included. So at start-up this module only puts a
small finder on ``sys.meta_path`` (standard library only, well under a millisecond) that
starts the instrumentation right after the process first imports ``openai``, ``anthropic``
or ``llmpulse.instrumentation`` (what ``llmpulse.context``/``step``/``feedback`` load), and
then takes itself off the path.
"""

from __future__ import annotations

import importlib.util
import os
import sys
import threading
from collections.abc import Callable, Sequence
from types import ModuleType
from typing import TYPE_CHECKING, Any

from llmpulse.contract.environment_variables import LLMPULSE_ENABLED

if TYPE_CHECKING:
    from importlib.machinery import ModuleSpec

_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"", "0", "false", "no", "off"})
TRIGGERS = ("openai", "anthropic", "llmpulse.instrumentation")


def _debug(message: str) -> None:
    import logging  # only on failure: logging costs milliseconds to import

    logging.getLogger(__name__).debug(message, exc_info=True)


class _NotifyingLoader:  # an importlib loader (duck-typed: importlib.abc costs ~5 ms to import)
    """Runs the real loader, puts it back on the module, then calls ``after``."""

    def __init__(self, loader: Any, after: Callable[[], None]) -> None:
        self.loader = loader
        self._after = after

    def create_module(self, spec: ModuleSpec) -> ModuleType | None:
        create = getattr(self.loader, "create_module", None)
        return create(spec) if create is not None else None

    def exec_module(self, module: ModuleType) -> None:
        spec = getattr(module, "__spec__", None)
        if getattr(module, "__loader__", None) is self:
            module.__loader__ = self.loader
        if spec is not None and spec.loader is self:
            spec.loader = self.loader  # importlib.resources and friends see the real loader
        self.loader.exec_module(module)
        self._after()

    def __getattr__(self, name: str) -> Any:  # get_resource_reader, is_package, ...
        return getattr(self.loader, name)


class ImportWatcher:
    """Calls ``on_import`` once, after the first of ``names`` is imported (a ``sys.meta_path`` finder)."""

    def __init__(self, names: Sequence[str], on_import: Callable[[], None]) -> None:
        self._names = frozenset(names)
        self._on_import = on_import
        self._local = threading.local()
        self._lock = threading.Lock()
        self._fired = False

    def install(self) -> None:
        """Put the watcher first on ``sys.meta_path``; fire at once if a name is already imported."""
        if any(name in sys.modules for name in self._names):
            self._fire()
            return
        sys.meta_path.insert(0, self)

    def remove(self) -> None:
        """Take the watcher off ``sys.meta_path`` (idempotent)."""
        if self in sys.meta_path:
            sys.meta_path.remove(self)

    def find_spec(
        self, fullname: str, path: Sequence[str] | None = None, target: ModuleType | None = None
    ) -> ModuleSpec | None:
        if fullname not in self._names or self._fired or getattr(self._local, "busy", False):
            return None
        self._local.busy = True  # the real finders below us, not ourselves again
        try:
            spec = importlib.util.find_spec(fullname)
        finally:
            self._local.busy = False
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec
        spec.loader = _NotifyingLoader(spec.loader, self._fire)  # type: ignore[assignment]
        return spec

    def _fire(self) -> None:
        with self._lock:
            if self._fired:
                return
            self._fired = True
        self.remove()
        try:
            self._on_import()
        except Exception:  # never break the application's import
            _debug("event=autostart_failed")


def _start() -> None:
    from llmpulse.instrumentation import autostart

    autostart()


def _warn_not_understood(value: str) -> None:
    import logging

    # Before the app configures logging this reaches stderr through logging's last resort.
    logging.getLogger(__name__).warning(
        "event=setting_ignored variable=%s value=%r reason=not_understood using=off "
        "accepted='%s to turn on, %s to turn off'",
        LLMPULSE_ENABLED,
        value,
        "|".join(sorted(_TRUE)),
        "|".join(sorted(_FALSE - {""})),
    )


def activate(value: str) -> bool:
    """Start watching for the trigger imports when ``value`` (of ``LLMPULSE_ENABLED``) means on;
    warn about a value that means neither on nor off. Never raises."""
    flag = value.strip().lower()
    try:
        if flag in _TRUE:
            ImportWatcher(TRIGGERS, _start).install()
            return True
        if flag not in _FALSE:
            _warn_not_understood(value)
    except Exception:  # never break the host interpreter
        _debug("event=autostart_failed")
    return False


activate(os.environ.get(LLMPULSE_ENABLED, ""))
