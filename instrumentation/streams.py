"""Transparent proxies around the SDKs' ``Stream`` / ``AsyncStream`` objects.

The caller iterates, closes, uses ``with`` / ``async with`` and reads attributes exactly as
on the SDK object (``wrapt.ObjectProxy`` forwards everything else, ``isinstance`` included).
Each chunk goes to an accumulator; the span ends exactly once: at the end of the stream, on
an error, on ``close()``, or when the caller drops the stream unfinished.
"""

from __future__ import annotations

import logging
from types import TracebackType
from typing import Any, Protocol

import wrapt
from opentelemetry.util.types import AttributeValue

from llmpulse.instrumentation.calls import CallRecorder

_log = logging.getLogger(__name__)


class Accumulator(Protocol):
    """Collects what a stream says about the call, one chunk at a time."""

    def on_chunk(self, chunk: Any) -> bool:
        """Look at ``chunk``; return ``False`` to hide it from the caller."""
        ...

    def attributes(self) -> dict[str, AttributeValue]:
        """The response attributes collected so far."""
        ...


def _finish(call: CallRecorder, acc: Accumulator, error: BaseException | None) -> None:
    if call.ended:
        return
    try:
        attrs = acc.attributes()
    except Exception:
        _log.debug("event=stream_accumulator_failed", exc_info=True)
        attrs = {}
    call.finish(attrs, error)


class StreamProxy(wrapt.ObjectProxy):
    """Proxy for a sync SDK stream."""

    def __init__(self, stream: Any, call: CallRecorder, acc: Accumulator) -> None:
        super().__init__(stream)
        self._self_call = call
        self._self_acc = acc
        self._self_started = False

    def __iter__(self) -> StreamProxy:
        return self

    def __next__(self) -> Any:
        try:
            chunk = self.__wrapped__.__next__()
        except StopIteration:
            _finish(self._self_call, self._self_acc, None)
            raise
        except BaseException as exc:
            _finish(self._self_call, self._self_acc, exc)
            raise
        try:
            if not self._self_started:
                self._self_started = True
                self._self_call.first_chunk()
            keep = self._self_acc.on_chunk(chunk)
        except Exception:
            _log.debug("llmpulse could not read a stream chunk", exc_info=True)
            keep = True
        return chunk if keep else self.__next__()

    def close(self) -> None:
        _finish(self._self_call, self._self_acc, None)
        self.__wrapped__.close()

    def __enter__(self) -> StreamProxy:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __del__(self) -> None:
        # Abandoned without being read to the end or closed.
        _finish(self._self_call, self._self_acc, None)


class AsyncStreamProxy(wrapt.ObjectProxy):
    """Proxy for an async SDK stream."""

    def __init__(self, stream: Any, call: CallRecorder, acc: Accumulator) -> None:
        super().__init__(stream)
        self._self_call = call
        self._self_acc = acc
        self._self_started = False

    def __aiter__(self) -> AsyncStreamProxy:
        return self

    async def __anext__(self) -> Any:
        try:
            chunk = await self.__wrapped__.__anext__()
        except StopAsyncIteration:
            _finish(self._self_call, self._self_acc, None)
            raise
        except BaseException as exc:
            _finish(self._self_call, self._self_acc, exc)
            raise
        try:
            if not self._self_started:
                self._self_started = True
                self._self_call.first_chunk()
            keep = self._self_acc.on_chunk(chunk)
        except Exception:
            _log.debug("llmpulse could not read a stream chunk", exc_info=True)
            keep = True
        return chunk if keep else await self.__anext__()

    async def close(self) -> None:
        _finish(self._self_call, self._self_acc, None)
        await self.__wrapped__.close()

    async def __aenter__(self) -> AsyncStreamProxy:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    def __del__(self) -> None:
        _finish(self._self_call, self._self_acc, None)
