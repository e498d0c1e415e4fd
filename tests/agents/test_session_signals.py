"""Per-session user signals and session judging, through the processor's pipeline.

Feedback given inside a conversation counts for its session (correction, follow-up, explicit
feedback and whether it was positive) without making a turn; feedback naming a conversation
that is not open is counted as unmatched. A share of sessions, chosen by a hash of the
conversation id, is judged once closed on the whole conversation by the quality engine's judge
(the fake provider over HTTP), with its own chart (``session_judge_score``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.proto.trace.v1.trace_pb2 import Span
from prometheus_client.registry import CollectorRegistry

from llmpulse.contract import attributes as A
from llmpulse.contract.sampling import is_sampled_key
from llmpulse.processor.agents import AgentConfigError, AgentEngine, AgentSettings, agents_extension
from llmpulse.processor.agents import metric_names as N
from llmpulse.processor.quality import metric_names as Q
from llmpulse.processor.quality.engine import QualityEngine
from llmpulse.processor.quality.extension import quality_extension
from llmpulse.processor.quality.settings import JudgeSettings, QualitySettings, SpcSettings
from llmpulse.processor.service import ProcessorService
from llmpulse.processor.settings import Settings
from llmpulse.testing.fake_provider import FakeProvider, FakeReply, RecordedRequest
from llmpulse.testing.otlp import llm_attributes, make_request, make_span

SERVICE_KEY = ("unknown_service", "", "support")  # service, deployment_environment, feature


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _trace(n: int) -> bytes:
    return ((n * 0x9E3779B97F4A7C15_5BD1E995) % (1 << 128)).to_bytes(16, "big")


def _text(role: str, text: str) -> dict[str, Any]:
    return {"role": role, "parts": [{"type": "text", "content": text}]}


def _call(trace: int, conversation: str, *, question: str | None = None, answer: str = "ok") -> Span:
    extra: dict[str, Any] = {A.GEN_AI_CONVERSATION_ID: conversation}
    if question is not None:  # content captured
        extra[A.GEN_AI_INPUT_MESSAGES] = json.dumps([_text("user", question)])
        extra[A.GEN_AI_OUTPUT_MESSAGES] = json.dumps([_text("assistant", answer)])
    return make_span(
        llm_attributes(**extra), trace_id=_trace(trace), span_id=(trace * 10 + 1).to_bytes(8, "big")
    )


def _feedback(trace: int, conversation: str | None, kind: str, value: float | None = None) -> Span:
    attrs: dict[str, Any] = {A.SPAN_KIND: A.SPAN_KIND_FEEDBACK, A.FEEDBACK_KIND: kind, A.FEATURE: "support"}
    if conversation is not None:
        attrs[A.GEN_AI_CONVERSATION_ID] = conversation
    if value is not None:
        attrs[A.FEEDBACK_VALUE] = value
    return make_span(attrs, trace_id=_trace(trace), span_id=(trace * 10 + 2).to_bytes(8, "big"))


def _process(service: ProcessorService, spans: list[Span]) -> None:
    result = service.pipeline.process(make_request(spans))
    assert result.rejected == 0, result.message


def test_feedback_in_a_conversation_counts_for_its_session() -> None:
    clock = Clock()
    engine = AgentEngine(AgentSettings(session_timeout_s=60, judge_rate=0.0), clock=clock)
    service = ProcessorService(
        Settings(grpc_port=0, http_port=0, admin_port=0), extensions=[agents_extension(engine, tick=3600)]
    )
    # "a": one turn, a thumbs up (in the turn's trace) -> abandoned, with feedback, positive
    _process(service, [_call(1, "a"), _feedback(1, "a", A.FEEDBACK_THUMBS, 1.0)])
    # "c": two thumbs up and a rating of 1 (negative): more than half positive
    _process(service, [_call(7, "c"), _call(8, "c")])
    for trace, kind, value in (
        (9, A.FEEDBACK_THUMBS, 1.0),
        (10, A.FEEDBACK_THUMBS, 1.0),
        (11, "rating", 1.0),
    ):
        _process(service, [_feedback(trace, "c", kind, value)])
    # "b": two turns; a correction, a follow-up and a thumbs down in traces of their own, the
    # last 50 s later: feedback keeps a session open
    _process(service, [_call(2, "b"), _feedback(3, "b", A.FEEDBACK_CORRECTION)])
    _process(service, [_call(4, "b"), _feedback(5, "b", A.FEEDBACK_FOLLOW_UP, 1.0)])
    clock.now += 50
    _process(service, [_feedback(6, "b", A.FEEDBACK_THUMBS, 0.0)])
    # feedback for a conversation that never had a call, and one without a conversation id
    _process(
        service, [_feedback(12, "gone", A.FEEDBACK_THUMBS, 1.0), _feedback(13, None, A.FEEDBACK_THUMBS, 1.0)]
    )

    clock.now += 11
    engine.tick()
    s = engine.metrics.sessions[SERVICE_KEY]
    assert s.sessions == 2  # "a" and "c"; "b" had feedback 11 s ago
    clock.now += 50
    engine.tick()

    s = engine.metrics.sessions[SERVICE_KEY]
    assert (s.sessions, s.abandoned) == (3, 1)
    assert s.turns.sum == 5  # feedback made no turn
    assert (s.corrected, s.followed_up, s.with_feedback, s.feedback_positive) == (1, 1, 3, 2)
    assert engine.metrics.feedback_unmatched == 1
    status = engine.status()["sessions"]["unknown_service/support"]
    assert status["corrected"] == 1 and status["with_feedback"] == 3
    # after the session closed, its feedback is unmatched
    _process(service, [_feedback(14, "a", A.FEEDBACK_THUMBS, 1.0)])
    engine.tick()
    assert engine.metrics.feedback_unmatched == 2


def _conversations(rate: float, count: int) -> tuple[list[str], list[str]]:
    """``count`` conversation ids sampled at ``rate`` and ``count`` not sampled."""
    sampled: list[str] = []
    other: list[str] = []
    n = 0
    while len(sampled) < count or len(other) < count:
        key = f"conv-{n}"
        (sampled if is_sampled_key(key, rate) else other).append(key)
        n += 1
    return sampled[:count], other[:count]


def _verdict(request: RecordedRequest) -> FakeReply:
    return FakeReply(
        text=json.dumps({"goal_met": 2, "frustration_free": 3, "consistency": 4, "explanation": "x"})
    )


async def test_closed_sessions_are_judged_on_the_whole_conversation(tmp_path: Path) -> None:
    assert is_sampled_key("conv-7", 0.5) == is_sampled_key("conv-7", 0.5)
    sampled, other = _conversations(0.5, 3)
    clock = Clock()
    with FakeProvider() as provider:
        provider.set_handler(_verdict)
        registry = CollectorRegistry(auto_describe=False)
        quality = QualityEngine(
            QualitySettings(
                judge=JudgeSettings(base_url=provider.openai_base_url, model="judge", api_key="k"),
                spc=SpcSettings(scores_per_window=2, warmup_windows=5),
                judge_rate=0.0,  # no call is judged on its own: only the sessions
                db_path=str(tmp_path / "quality.db"),
            ),
            registry=registry,
        )
        agents = AgentEngine(
            AgentSettings(session_timeout_s=60, judge_rate=0.5, judge_chars=30),
            clock=clock,
            session_judge=quality.offer_session,
        )
        service = ProcessorService(
            Settings(grpc_port=0, http_port=0, admin_port=0),
            extensions=[quality_extension(quality, registry=registry), agents_extension(agents, tick=3600)],
        )
        await quality.start()
        try:
            trace = 100
            for i, conversation in enumerate(sampled + other):
                for turn in range(2):
                    trace += 1
                    question = f"question {turn} of {conversation}" if i != 1 else None  # 2nd: no content
                    _process(
                        service, [_call(trace, conversation, question=question, answer=f"answer {turn} " * 9)]
                    )
            clock.now += 61
            agents.tick()
            await quality.drain(timeout=10)
        finally:
            await quality.stop()

        judged = [r for r in provider.requests if "conversations between a user" in json.dumps(r.body)]
        assert len(judged) == 2  # sampled[0] and sampled[2]; sampled[1] had no content
        texts = [r.body["messages"][1]["content"] for r in judged]
        (conversation,) = [t for t in texts if f"of {sampled[0]}" in t]
        assert any(f"of {sampled[2]}" in t for t in texts)
        order = [conversation.index(f"question {t} of {sampled[0]}") for t in range(2)]
        assert order == sorted(order)  # oldest first, both turns
        assert '"answer 1 answer 1 answer 1 ans"' in conversation  # clipped to judge_chars (30)

    s = agents.metrics.sessions[SERVICE_KEY]
    assert s.judge == {N.SESSION_JUDGE_OFFERED: 2, N.SESSION_JUDGE_INCOMPLETE: 1}
    assert s.sessions == 6
    chart = quality.charts.states()[("unknown_service", "support", Q.STAT_SESSION_SCORE)]
    assert chart is not None and chart.value == 3.0  # mean of (2, 3, 4), one window of 2 sessions
    assert ("unknown_service", "support", Q.STAT_JUDGE_SCORE) not in quality.charts.states()
    scores = {
        s.labels["dimension"]: s.value
        for metric in registry.collect()
        if metric.name == Q.JUDGE_SCORE
        for s in metric.samples
        if s.name.endswith("_sum")
    }
    assert scores == {"goal_met": 4.0, "frustration_free": 6.0, "consistency": 8.0}


def test_transcripts_are_bounded_and_the_cap_is_counted() -> None:
    clock = Clock()
    engine = AgentEngine(
        AgentSettings(session_timeout_s=60, judge_rate=1.0, max_judged_sessions=2, judge_turns=3), clock=clock
    )
    service = ProcessorService(
        Settings(grpc_port=0, http_port=0, admin_port=0), extensions=[agents_extension(engine, tick=3600)]
    )
    for i in range(4):  # four sampled sessions open at once: two hold a transcript
        _process(service, [_call(200 + i, f"s-{i}", question="q")])
    for turn in range(5):  # a long session keeps its latest three turns
        _process(service, [_call(300 + turn, "s-0", question=f"q{turn}", answer=f"a{turn}")])
    (held,) = [s for s in engine.sessions._open.values() if s.conversation_id == "s-0"]
    assert held.transcript is not None
    assert [t.user for t in held.transcript.values()] == ["q2", "q3", "q4"]
    clock.now += 61
    engine.tick()
    assert engine.metrics.evictions[N.EVICT_JUDGE_CAP] == 2
    s = engine.metrics.sessions[SERVICE_KEY]
    assert s.judge == {N.SESSION_JUDGE_NO_JUDGE: 2}  # no judge wired
    # a new session may hold a transcript again once those closed
    _process(service, [_call(400, "s-9", question="q")])
    (fresh,) = engine.sessions._open.values()
    assert fresh.transcript is not None


def test_session_judging_settings_are_checked() -> None:
    assert AgentSettings.from_dict({"judge_rate": 0}).judge_rate == 0.0
    assert AgentSettings.from_dict({"judge_rate": 1, "judge_turns": 5}).judge_turns == 5
    for bad in ({"judge_rate": 1.5}, {"judge_rate": True}, {"judge_chars": 0}, {"max_judged_sessions": "9"}):
        with pytest.raises(AgentConfigError, match=next(iter(bad))):
            AgentSettings.from_dict(bad)
