"""Plugs the drift engine into the processor as one extension: its listener, its metrics, the
``/api/drift`` routes, the ``drift`` status section, and (optionally) the background run loop
and the persistence of frozen references across restarts::

    engine = DriftEngine(registry=CollectorRegistry())
    service = ProcessorService(settings, extensions=[drift_extension(engine, interval=1.0)])
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable, Collection
from pathlib import Path

from llmpulse.processor.drift.admin import DRIFT_PATH_PREFIX, DriftAdmin
from llmpulse.processor.drift.engine import DriftEngine
from llmpulse.processor.drift.listener import DriftListener
from llmpulse.processor.extension import Extension, cancel_tasks
from llmpulse.processor.store.protocols import DriftReferences

__all__ = ["drift_extension"]

logger = logging.getLogger(__name__)


def drift_extension(
    engine: DriftEngine,
    *,
    state_path: str | os.PathLike[str] | None = None,
    references: DriftReferences | None = None,
    close_references: Callable[[], None] | None = None,
    interval: float | None = None,
    persist_interval: float = 1.0,
) -> Extension:
    """The ``drift`` extension of ``engine``.

    The engine's registry is added to ``/metrics`` as a collector, so build the engine on a
    registry of its own (``DriftEngine(registry=CollectorRegistry())``).

    Args:
        state_path: where frozen references persist: loaded at start when the file exists,
            saved within ``persist_interval`` seconds of every change (a reference frozen or
            re-frozen, a chart baseline fixed) and at stop, so a SIGKILL or an OOM kill loses at
            most that much. None: nothing persists.
        references: a store's drift references (SQLite or PostgreSQL, shared by replicas), used
            instead of ``state_path`` the same way; ``close_references`` is called at stop.
        interval: seconds between background runs of the engine (``engine.run``), started with
            the extension and cancelled at stop. None: no background run; the caller runs
            ``engine.run_once()`` itself (tests do).
    """
    tasks: list[asyncio.Task[None]] = []
    saved = [-1]  # the engine generation last written
    target = references if references is not None else state_path

    async def save_if_changed() -> None:
        generation = engine.generation()
        if target and generation != saved[0]:
            await asyncio.to_thread(engine.save_state, target)
            saved[0] = generation

    async def persist() -> None:
        while True:
            await asyncio.sleep(persist_interval)
            try:
                await save_if_changed()
            except OSError as exc:  # a full disk must not stop drift monitoring; the next tick retries
                logger.warning("event=drift_state_not_saved path=%s error=%s", state_path, exc)
            except Exception as exc:  # nor a store that is down for a moment
                if references is None:
                    raise
                logger.warning("event=drift_state_not_saved target=store error=%s", exc)

    async def start() -> None:
        if references is not None:
            await asyncio.to_thread(engine.load_state, references)
        elif state_path and Path(state_path).exists():
            await asyncio.to_thread(engine.load_state, state_path)
        saved[0] = engine.generation()
        loop = asyncio.get_running_loop()
        if interval is not None:
            tasks.append(loop.create_task(engine.run(interval=interval), name="drift"))
        if target:
            tasks.append(loop.create_task(persist(), name="drift-persist"))

    async def stop() -> None:
        await cancel_tasks(tasks)
        if target:
            await asyncio.to_thread(engine.save_state, target)
            saved[0] = engine.generation()
        if close_references is not None:
            await asyncio.to_thread(close_references)

    class Owner:
        """The engine's keys moving with a Kafka owner topic's partitions (see KeyOwner)."""

        async def resume(self, keys: Collection[tuple[str, str]]) -> None:
            if references is not None:
                restored = await asyncio.to_thread(engine.resume_keys, keys, references)
                logger.info("event=drift_references_resumed keys=%d restored=%d", len(keys), restored)

        def release(self, keys: Collection[tuple[str, str]] | None, *, save: bool = True) -> None:
            if not save:  # lost: a new owner may have changed the reference already
                engine.release_keys(keys, None)
                logger.info("event=drift_references_dropped keys=%s", "all" if keys is None else len(keys))
                return
            try:
                saved = engine.release_keys(keys, references)
            except Exception:  # a store down for a moment: the next owner resumes an older reference
                logger.exception("event=drift_references_not_saved")
                engine.release_keys(keys, None)
                return
            logger.info("event=drift_references_released saved=%d", saved)

    return Extension(
        "drift",
        listeners=[DriftListener(engine)],
        collectors=[engine.metrics.registry],
        admin_routes={DRIFT_PATH_PREFIX: DriftAdmin(engine)},
        status=engine.status,
        start=start,
        stop=stop,
        owner=Owner(),
    )
