"""Captured sessions through the processor's pipeline into a real SQLite store: only sampled
sessions with content are kept, the store is bounded by content bytes and every drop counted."""

from __future__ import annotations

import asyncio
from pathlib import Path

from llmpulse.processor.agents import AgentEngine, AgentSettings, agents_extension
from llmpulse.processor.agents import metric_names as N
from llmpulse.processor.agents.capture import SessionCapture
from llmpulse.processor.engines import build_engines
from llmpulse.processor.quality.types import QualitySample
from llmpulse.processor.service import ProcessorService
from llmpulse.processor.settings import Settings
from llmpulse.processor.store.factory import open_store
from llmpulse.processor.store.sessions import SessionRecord, TurnRecord
from tests.agents.test_session_signals import Clock, _call, _process, _trace


async def test_captured_sessions_are_bounded_in_bytes_and_the_drops_counted(tmp_path: Path) -> None:
    db = str(tmp_path / "quality.db")
    store = open_store(db)
    capture = SessionCapture(store.sessions, max_bytes=450, close=store.close)  # room for two
    clock = Clock()
    engine = AgentEngine(AgentSettings(session_timeout_s=60, judge_rate=1.0), clock=clock, capture=capture)
    service = ProcessorService(
        Settings(grpc_port=0, http_port=0, admin_port=0), extensions=[agents_extension(engine, tick=3600)]
    )
    for i in range(5):  # 200 bytes of content each
        _process(service, [_call(500 + i, f"b-{i}", question="q" * 100, answer="a" * 100)])
        clock.now += 1
    _process(service, [_call(600, "no-content")])  # sampled, but nothing to show: not stored
    _process(service, [_call(601, "b-0", question="again", answer="yes")])  # b-0's second turn
    clock.now += 61
    engine.tick()
    await capture.stop()  # stores what is queued (no writer task ran), prunes, closes
    engine.tick()
    assert engine.metrics.evictions[N.EVICT_SESSION_STORE] == 3
    assert engine.metrics.evictions[N.EVICT_SESSION_QUEUE] == 0
    assert capture.stored == 5
    with open_store(db) as reopened:
        kept = reopened.sessions.sessions(limit=None)
        assert [s.record.conversation_id for s in kept] == ["b-0", "b-4"]  # newest first: b-0 closed last
        b0 = reopened.sessions.session(kept[0].id)
    assert b0 is not None and b0.record.turns == 2
    assert [(t.trace_id, t.user) for t in b0.record.transcript] == [
        (_trace(500), "q" * 100),
        (_trace(601), "again"),
    ]
    assert b0.record.last_trace_id == _trace(601)


def _record(n: int) -> SessionRecord:
    turn = TurnRecord(_trace(n), "q" * 100, "a" * 100, 1.8e9 + n, 0.5)
    return SessionRecord("shop", "chat", f"c-{n}", 1.8e9 + n, 1.8e9 + n, 1, turn.trace_id, (turn,))


async def test_the_writer_prunes_at_most_every_few_seconds(tmp_path: Path) -> None:
    store = open_store(str(tmp_path / "quality.db"))
    clock = Clock()
    capture = SessionCapture(store.sessions, max_bytes=250, close=store.close, prune_every_s=5, clock=clock)
    writer = asyncio.get_running_loop().create_task(capture.run())
    try:
        capture.save(_record(1))
        await capture.join()  # the first batch prunes: nothing to drop
        clock.now += 1
        capture.save(_record(2))
        await capture.join()  # 1 s later: no prune, the bound is overshot for now
        assert (store.sessions.count_sessions(), capture.evicted) == (2, 0)
        clock.now += 5
        capture.save(_record(3))
        await capture.join()
        assert (store.sessions.count_sessions(), capture.evicted) == (1, 2)
        assert [s.record.conversation_id for s in store.sessions.sessions()] == ["c-3"]
    finally:
        writer.cancel()
        await asyncio.gather(writer, return_exceptions=True)
        await capture.stop()


async def test_a_flagged_call_keeps_its_unsampled_session_from_that_turn_on(tmp_path: Path) -> None:
    db = str(tmp_path / "quality.db")
    tables = {
        "quality": {"db_path": db, "judge": {"enabled": False}, "retention_days": 36500},  # old span times
        "drift": {"enabled": False},
        "agents": {"judge_rate": 0.0, "session_timeout_s": 600},  # no session is sampled
    }
    extensions = build_engines(tables, {})
    service = ProcessorService(Settings(grpc_port=0, http_port=0, admin_port=0), extensions=extensions)
    for extension in extensions:
        await extension.start()
    refusal = "I'm sorry, but I can't help with that."
    turns = [("hello", "Hi, how can I help?"), ("cancel my order", refusal), ("why not?", "Policy.")]
    for n, (question, answer) in enumerate(turns):
        _process(service, [_call(700 + n, "p", question=question, answer=answer)])
    _process(service, [_call(710, "quiet", question="hello", answer="Hi.")])  # nothing flagged
    for extension in reversed(extensions):
        await extension.stop()  # the agents engine closes its sessions and stores what it captured

    with open_store(db) as store:
        (flagged,) = store.flagged.query(limit=None)
        assert flagged.record.trace_id == _trace(701) and "refusal_phrase" in flagged.record.reasons
        (kept,) = store.sessions.sessions(limit=None)
        session = store.sessions.session(kept.id)
        assert store.sessions.session_of_trace(_trace(701)) == kept.id
    assert session is not None and session.verdict is None  # not sampled: never judged
    record = session.record
    assert (record.conversation_id, record.turns, record.turns_clipped) == ("p", 3, 1)
    assert [(t.user, t.answer) for t in record.transcript] == turns[1:]  # from the flagged turn on
    assert [t["turn"] for t in session.to_json()["transcript"]] == [2, 3]


async def test_a_turn_flagged_late_keeps_its_number(tmp_path: Path) -> None:
    """The judge's verdict comes seconds after the call: the session has moved on by then."""
    store = open_store(str(tmp_path / "quality.db"))
    capture = SessionCapture(store.sessions, max_bytes=10**6, close=store.close)
    clock = Clock()
    engine = AgentEngine(AgentSettings(session_timeout_s=60, judge_rate=0.0), clock=clock, capture=capture)
    service = ProcessorService(
        Settings(grpc_port=0, http_port=0, admin_port=0), extensions=[agents_extension(engine, tick=3600)]
    )
    for n in range(3):
        _process(service, [_call(800 + n, "late", question=f"q{n}", answer=f"a{n}")])
    flagged = QualitySample(
        _trace(801),
        "support",
        "gpt-4o-mini",
        input_messages=[{"role": "user", "parts": [{"type": "text", "content": "q1"}]}],
        output_text="a1",
        timestamp=1.7e9,
        duration_s=0.25,
        conversation_id="late",
    )
    engine.promote(flagged)  # turn 2 of 3
    engine.promote(flagged)  # a second flag changes nothing
    _process(service, [_call(803, "late", question="q3", answer="a3")])
    clock.now += 61
    engine.tick()
    await capture.stop()
    with open_store(str(tmp_path / "quality.db")) as reopened:
        (kept,) = reopened.sessions.sessions(limit=None)
        shown = reopened.sessions.session(kept.id)
    assert shown is not None
    assert (shown.record.turns, shown.record.turns_clipped) == (4, 1)
    turns = shown.to_json()["transcript"]
    assert [(t["turn"], t["user"], t["answer"]) for t in turns] == [(2, "q1", "a1"), (4, "q3", "a3")]
    assert turns[0]["duration_s"] == 0.25
    assert engine.metrics.sessions[("unknown_service", "", "support")].judge == {}  # never judged
