"""Memory held for a client's values is bounded in bytes, not only in entries."""

from __future__ import annotations

from llmpulse.processor.pipeline.dedup import MAX_ID_CHARS, Deduplicator
from llmpulse.processor.pipeline.records import LLMCall
from llmpulse.testing.clock import FakeClock


def _call(n: int, response_id: str) -> LLMCall:
    call = LLMCall()
    call.provider = "anthropic"
    call.response_id = response_id
    call.trace_id = n.to_bytes(16, "big")
    call.span_id = n.to_bytes(8, "big")
    call.parent_span_id = b""
    return call


def test_long_response_ids_are_remembered_by_digest_and_still_pair_twins() -> None:
    dedup = Deduplicator(clock=FakeClock(0.0))
    long_ids = [f"{n:08d}" + "x" * 8192 for n in range(2_000)]
    for n, response_id in enumerate(long_ids):
        dedup.primary(_call(n, response_id))
    keys = list(dedup._recent)
    assert len(keys) == len(long_ids)
    assert all(len(k) <= MAX_ID_CHARS for k in keys if isinstance(k, str | bytes))
    # the SDK's twin of a call with a long id is still recognised (same digest)
    twin = _call(99_999, long_ids[7])
    assert dedup.secondary(twin) is True
    # short ids are kept as they are
    dedup.primary(_call(100_000, "msg_01ABC"))
    assert "msg_01ABC" in dedup._recent
