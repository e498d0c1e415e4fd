"""Count each LLM call once when the anthropic SDK also traces it.

The ``anthropic`` package emits its own span (scope ``com.anthropic.sdk.python``) for every
call whenever a TracerProvider is set. Beside another instrumentation that gives two spans for
one call: a parent and a child in one trace (official GenAI, OpenInference, llmpulse), or two
traces carrying the same ``gen_ai.response.id`` (OpenLLMetry). The SDK span is therefore
*secondary*: it is held back for ``hold_seconds`` and dropped if a primary span for the same
call shows up (its parent, or the same response id); otherwise it is counted on release.

Only primary spans from the ``anthropic`` provider are remembered, by response id (or by span
when they have none), so everyone else pays one comparison. Every map is bounded in entries,
and in bytes too: a response id longer than :data:`MAX_ID_CHARS` is remembered by its 16-byte
BLAKE2 digest, so 100,000 remembered ids of any length hold a few MB.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable

from llmpulse.processor.pipeline.records import LLMCall

ANTHROPIC_PROVIDER = "anthropic"
MAX_ID_CHARS = 128


def _id_key(response_id: str) -> str | bytes:
    """``response_id`` itself, or its digest when it is implausibly long."""
    if len(response_id) <= MAX_ID_CHARS:
        return response_id
    return hashlib.blake2b(response_id.encode("utf-8", "surrogatepass"), digest_size=16).digest()


def _remember(store: dict[object, None], key: object, limit: int) -> None:
    store[key] = None
    if len(store) > limit:
        del store[next(iter(store))]  # forget the oldest


class Deduplicator:
    """Pairs secondary (anthropic SDK) spans with primary spans of the same call."""

    def __init__(
        self,
        *,
        hold_seconds: float = 2.0,
        max_pending: int = 10_000,
        max_recent: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._hold = hold_seconds
        self._max_pending = max_pending
        self._max_recent = max_recent
        self._clock = clock
        # pending secondary spans in arrival order: id(call) -> (deadline, call)
        self._pending: dict[int, tuple[float, LLMCall]] = {}
        self._pending_by_key: dict[object, int] = {}
        self._recent: dict[object, None] = {}

    @property
    def pending(self) -> int:
        """Secondary spans held back, not yet counted or dropped."""
        return len(self._pending)

    def primary(self, call: LLMCall) -> int:
        """Note a primary LLM span; returns how many held secondary spans it made duplicates."""
        if call.provider != ANTHROPIC_PROVIDER:
            return 0
        # the response id identifies the call across traces; without one (a failed call) the span does
        own_key: object = _id_key(call.response_id) if call.response_id else (call.trace_id, call.span_id)
        _remember(self._recent, own_key, self._max_recent)
        if not self._pending_by_key:
            return 0
        dropped = 0
        for key in {own_key, (call.trace_id, call.span_id)}:
            held = self._pending_by_key.pop(key, None)
            if held is not None and self._pending.pop(held, None) is not None:
                dropped += 1
        return dropped

    def secondary(self, call: LLMCall) -> bool:
        """Take a secondary span: True if it duplicates a primary already seen (drop it).

        Otherwise it is held; :meth:`release` returns it once its hold time is over.
        Returns False also when the hold buffer is full: the span is then released at once
        by the next :meth:`release` call rather than dropped.
        """
        parent_key = (call.trace_id, call.parent_span_id)
        id_key = _id_key(call.response_id) if call.response_id else None
        if parent_key in self._recent or (id_key is not None and id_key in self._recent):
            return True
        ident = id(call)
        deadline = self._clock() + (self._hold if len(self._pending) < self._max_pending else 0.0)
        self._pending[ident] = (deadline, call)
        self._pending_by_key[parent_key] = ident
        if id_key is not None:
            self._pending_by_key[id_key] = ident
        return False

    def release(self, *, everything: bool = False) -> list[LLMCall]:
        """Secondary spans whose hold time is over (all of them with ``everything``)."""
        if not self._pending:
            return []
        now = self._clock()
        released: list[LLMCall] = []
        for ident, (deadline, call) in list(self._pending.items()):
            if not everything and deadline > now:
                break
            del self._pending[ident]
            released.append(call)
        if released:
            live = self._pending
            self._pending_by_key = {k: v for k, v in self._pending_by_key.items() if v in live}
        return released
