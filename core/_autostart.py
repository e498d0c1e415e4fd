"""Interpreter start-up hook, imported by ``llmpulse-autoinstrument.pth``.

The ``.pth`` line only reads ``LLMPULSE_ENABLED`` and imports this module when it is
set; this module decides whether the value means "on" and, if so, instruments.
It must never break interpreter start-up, so every failure is logged and dropped.
"""

from __future__ import annotations

import logging
import os

from llmpulse.attributes import ENV_ENABLED

_TRUE = frozenset({"1", "true", "yes", "on"})

if os.environ.get(ENV_ENABLED, "").strip().lower() in _TRUE:
    try:
        from llmpulse.instrumentation import autostart

        autostart()
    except Exception:  # never break the host interpreter
        logging.getLogger(__name__).debug("llmpulse auto-instrumentation failed", exc_info=True)
