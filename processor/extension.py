"""What an engine adds to the processor: one :class:`Extension` per engine.

An extension is a frozen dataclass of parts rather than a Protocol an engine class implements,
because an engine is plugged in by several objects that each do one job (the quality engine, its
record listener and the canary runner; the drift engine, its listener and its admin routes): the
function that builds an engine's extension (:func:`~llmpulse.processor.quality.extension.quality_extension`,
:func:`~llmpulse.processor.drift.extension.drift_extension`) puts those parts together, and a test
builds one in a line (``Extension("probe", listeners=[recorder])``). Every part is optional.

:class:`~llmpulse.processor.service.ProcessorService` (``extensions=[...]``) wires them:

* ``listeners`` join the pipeline, in extension order (see
  :class:`~llmpulse.processor.pipeline.queue.RecordListener`);
* ``collectors`` are registered on the processor's registry, so their families appear on the
  same ``/metrics`` (an engine keeps its metrics on a ``CollectorRegistry`` of its own and adds
  that registry as one collector);
* ``admin_routes`` (path prefix -> handler) are tried before the admin port's own paths;
* ``status``, when given, is the ``/api/status`` section under the extension's ``name``, so a
  section and the extension it belongs to cannot be told apart by two different names;
* ``start()`` runs before the receivers bind (the first spans find the engine running) and
  ``stop()`` after the queue has drained and the servers have closed (the engine sees every
  accepted record); stops run in reverse order, and one failing stop does not keep the others
  running;
* ``owner``, when given, is told which (service, feature) keys this replica owns when a Kafka
  owner topic decides that (``--kafka-owner-topic``): :meth:`KeyOwner.resume` before the first
  record of a key is counted here, :meth:`KeyOwner.release` when its partition moves away.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from prometheus_client.registry import Collector

from llmpulse.processor.http_server import Handler
from llmpulse.processor.pipeline.queue import RecordListener

__all__ = ["Extension", "KeyOwner", "Lifecycle", "cancel_tasks"]

Lifecycle = Callable[[], Awaitable[None]]
"""An extension's ``start`` or ``stop``: a coroutine function without arguments."""


async def _nothing() -> None:
    """Nothing to start or stop."""


async def cancel_tasks(tasks: list[asyncio.Task[None]]) -> None:
    """Cancel an extension's background tasks, last started first, and wait for each to end."""
    while tasks:
        task = tasks.pop()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


class KeyOwner(Protocol):
    """An engine whose state per (service, feature) moves between replicas with Kafka partitions.

    Both are called on the event loop's thread. ``resume`` runs before the pipeline sees the
    first record of ``keys`` on this replica: restore their state from the shared store (no new
    warm-up). ``release`` runs inside the partition revocation, before Kafka hands the partition
    to another replica: save what changed since the last save, forget the keys' state and remove
    their gauge series (one exporter per key). ``release(None)`` gives up every key held (at the
    source's start: the assignment hands back what this replica owns). ``save=False`` forgets
    without saving: the partition was *lost* (this replica's session expired), so Kafka may
    already have given it to a new owner that resumed and changed the key's state, and a save
    from here would write an older state over the new owner's.
    """

    async def resume(self, keys: Collection[tuple[str, str]]) -> None: ...

    def release(self, keys: Collection[tuple[str, str]] | None, *, save: bool = True) -> None: ...


@dataclass(frozen=True)
class Extension:
    """An engine's listeners, metric collectors, admin routes, status section, start and stop.

    Args:
        name: names the engine in logs and its ``/api/status`` section; unique per service.
        listeners: get every counted LLM call and feedback event.
        collectors: add metric families to ``/metrics``.
        admin_routes: path prefix -> handler on the admin port.
        status: the JSON-ready ``/api/status`` section under ``name``; None for no section.
        start: awaited when the service starts, before its ports are bound.
        stop: awaited when the service stops, after the queue drained and the ports closed.
        owner: the engine's :class:`KeyOwner` hooks; None when its state is not per key.
    """

    name: str
    listeners: Sequence[RecordListener] = ()
    collectors: Sequence[Collector] = ()
    admin_routes: Mapping[str, Handler] = field(default_factory=dict)
    status: Callable[[], Any] | None = None
    start: Lifecycle = _nothing
    stop: Lifecycle = _nothing
    owner: KeyOwner | None = None
