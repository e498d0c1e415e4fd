"""Plugs the drift engine into the processor as one extension: its listener, its metrics, the
``/api/drift`` routes, the ``drift`` status section, and (optionally) the background run loop
and the persistence of frozen references across restarts::

    engine = DriftEngine(registry=CollectorRegistry())
    service = ProcessorService(settings, extensions=[drift_extension(engine, interval=1.0)])
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from pathlib import Path

from llmpulse.processor.drift.admin import DRIFT_PATH_PREFIX, DriftAdmin
from llmpulse.processor.drift.engine import DriftEngine
from llmpulse.processor.drift.listener import DriftListener
from llmpulse.processor.extension import Extension

__all__ = ["drift_extension"]


def drift_extension(
    engine: DriftEngine,
    *,
    state_path: str | os.PathLike[str] | None = None,
    interval: float | None = None,
) -> Extension:
    """The ``drift`` extension of ``engine``.

    The engine's registry is added to ``/metrics`` as a collector, so build the engine on a
    registry of its own (``DriftEngine(registry=CollectorRegistry())``).

    Args:
        state_path: where frozen references persist: loaded at start when the file exists,
            saved at stop. None: nothing persists.
        interval: seconds between background runs of the engine (``engine.run``), started with
            the extension and cancelled at stop. None: no background run; the caller runs
            ``engine.run_once()`` itself (tests do).
    """
    tasks: list[asyncio.Task[None]] = []

    async def start() -> None:
        if state_path and Path(state_path).exists():
            await asyncio.to_thread(engine.load_state, state_path)
        if interval is not None:
            tasks.append(asyncio.get_running_loop().create_task(engine.run(interval=interval), name="drift"))

    async def stop() -> None:
        while tasks:
            task = tasks.pop()
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if state_path:
            await asyncio.to_thread(engine.save_state, state_path)

    return Extension(
        "drift",
        listeners=[DriftListener(engine)],
        collectors=[engine.metrics.registry],
        admin_routes={DRIFT_PATH_PREFIX: DriftAdmin(engine)},
        status=engine.status,
        start=start,
        stop=stop,
    )
