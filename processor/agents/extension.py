"""Plugs the agents engine into the processor as one extension: the engine as a record
listener, its metrics collector, the ``agents`` status section, and the background tick that
counts runs and closes sessions, and the writer of captured sessions when the engine has one::

    engine = AgentEngine(AgentSettings())
    service = ProcessorService(settings, extensions=[agents_extension(engine)])
"""

from __future__ import annotations

import asyncio
import logging

from llmpulse.processor.agents.engine import AgentEngine
from llmpulse.processor.agents.metrics import AgentsCollector
from llmpulse.processor.extension import Extension, cancel_tasks

__all__ = ["agents_extension"]

logger = logging.getLogger(__name__)


def agents_extension(engine: AgentEngine, *, tick: float | None = None) -> Extension:
    """The ``agents`` extension of ``engine``; ``tick`` seconds between passes (default: the settings')."""
    interval = engine.settings.tick_s if tick is None else tick
    tasks: list[asyncio.Task[None]] = []

    async def run() -> None:
        while True:
            await asyncio.sleep(interval)
            try:
                engine.tick()
            except Exception:  # one bad pass must not end agent tracking
                logger.exception("event=agents_tick_failed")

    async def start() -> None:
        loop = asyncio.get_running_loop()
        tasks.append(loop.create_task(run(), name="agents"))
        if engine.capture is not None:
            tasks.append(loop.create_task(engine.capture.run(), name="agents-session-writer"))

    async def stop() -> None:
        await cancel_tasks(tasks)
        engine.flush()  # the sessions still open close now: captured ones are queued
        if engine.capture is not None:
            await engine.capture.stop()

    return Extension(
        "agents",
        listeners=[engine],
        collectors=[AgentsCollector(engine.metrics)],
        status=engine.status,
        start=start,
        stop=stop,
    )
