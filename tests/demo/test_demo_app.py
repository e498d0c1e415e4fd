"""The demo app's requests (conversations, agent runs, the app-side session incident) and the
scripted provider's timing, on their own: fake clients record what the app sends. Fast."""

from __future__ import annotations

import time
import types
from collections import Counter
from typing import Any

import pytest

import llmpulse
from llmpulse.contract import attributes as A
from llmpulse.demo import app as demo_app
from llmpulse.demo.provider import SENT_AT_HEADER, reply_for
from llmpulse.demo.scenario import FEATURES, LOOP_REPEATS, Feature, ScenarioState
from llmpulse.instrumentation.context import current_attributes
from llmpulse.testing.fake_reply import RecordedRequest

_FEATURE = {f.name: f for f in FEATURES}


class _Recorder:
    """Stands in for both SDK clients: every call is recorded with the llmpulse context it ran in."""

    def __init__(self) -> None:
        self.calls: list[tuple[dict[str, Any], dict[str, Any]]] = []
        self.feedback: list[tuple[str | None, str]] = []
        self.chat = types.SimpleNamespace(completions=self)
        self.messages = self

    def create(self, **kwargs: Any) -> Any:
        self.calls.append((dict(current_attributes()), kwargs))
        if kwargs.get("stream"):
            return iter(())
        return types.SimpleNamespace(id=f"r{len(self.calls)}")

    def record_feedback(self, kind: str, value: float, **_: Any) -> None:
        self.feedback.append((current_attributes().get(A.GEN_AI_CONVERSATION_ID), kind))


def _app(
    monkeypatch: pytest.MonkeyPatch, active: frozenset[str] = frozenset()
) -> tuple[demo_app.DemoApp, _Recorder]:
    recorder = _Recorder()
    # no real waiting: retrieval, rerank, tool calls and the users' reading time
    monkeypatch.setattr(demo_app, "time", types.SimpleNamespace(sleep=lambda _s: None, time=time.time))
    app = demo_app.DemoApp(openai_client=recorder, anthropic_client=recorder, active=lambda: active, seed=5)
    shim = types.SimpleNamespace(
        context=llmpulse.context,
        step=llmpulse.step,
        agent=llmpulse.agent,
        tool=llmpulse.tool,
        feedback=recorder.record_feedback,
    )
    monkeypatch.setattr(app, "_llmpulse", shim)
    return app, recorder


def _conversations(recorder: _Recorder) -> Counter[str]:
    return Counter(attributes[A.GEN_AI_CONVERSATION_ID] for attributes, _ in recorder.calls)


def _requests(app: demo_app.DemoApp, feature: Feature, n: int) -> None:
    for _ in range(n):
        app.handle(feature)


def test_support_chat_requests_are_conversations_of_several_calls(monkeypatch: pytest.MonkeyPatch) -> None:
    app, recorder = _app(monkeypatch)
    feature = _FEATURE["support-chat"]
    _requests(app, feature, 400)
    turns = _conversations(recorder)
    assert len(turns) == 400  # one conversation id per request, shared by its turns
    single = sum(1 for n in turns.values() if n == 1) / len(turns)
    assert 0.01 <= single <= 0.1  # the 5% who abandon after the first answer
    # the feature table's call rate is what the app sends (early exits cost a little)
    assert 0.85 <= len(recorder.calls) / 400 / (feature.calls_per_s / feature.rate_per_s) <= 1.0
    assert all(attributes[A.FEATURE] == "support-chat" for attributes, _ in recorder.calls)
    assert not any(A.SESSION_ID in attributes for attributes, _ in recorder.calls)
    # every call says when the app made it
    sent = [float(kwargs["extra_headers"][SENT_AT_HEADER]) for _, kwargs in recorder.calls]
    assert all(abs(t - time.time()) < 60 for t in sent)


def test_users_leaving_after_the_first_answer_end_most_conversations_silently(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    app, recorder = _app(monkeypatch, frozenset({"first_answer_exit"}))
    _requests(app, _FEATURE["support-chat"], 400)
    turns = _conversations(recorder)
    single = {c for c, n in turns.items() if n == 1}
    assert 0.55 <= len(single) / len(turns) <= 0.75
    # those who leave say nothing: the per-call abandonment signal does not see them
    abandoned = {c for c, kind in recorder.feedback if kind == "abandoned"}
    assert len(abandoned & single) <= 0.1 * len(single)


def test_one_call_features_get_a_session_id_per_request(monkeypatch: pytest.MonkeyPatch) -> None:
    app, recorder = _app(monkeypatch)
    _requests(app, _FEATURE["doc-qa"], 20)
    _requests(app, _FEATURE["summarize"], 20)
    sessions = [attributes.get(A.SESSION_ID) for attributes, _ in recorder.calls]
    assert len(sessions) == 40 and None not in sessions
    assert not any(A.GEN_AI_CONVERSATION_ID in attributes for attributes, _ in recorder.calls)


@pytest.mark.parametrize(
    ("active", "per_turn"), [(frozenset(), (2, 3)), ({"agent_loop"}, (LOOP_REPEATS + 1,))]
)
def test_the_trip_agent_runs_calls_per_turn(
    monkeypatch: pytest.MonkeyPatch, active: frozenset[str], per_turn: tuple[int, ...]
) -> None:
    app, recorder = _app(monkeypatch, frozenset(active))
    feature = _FEATURE["trip-agent"]
    _requests(app, feature, 200)
    turns = _conversations(recorder)
    assert len(turns) == 200
    mean = len(recorder.calls) / 200
    if not active:  # the feature table's calls per request
        assert abs(mean / (feature.calls_per_s / feature.rate_per_s) - 1) < 0.15
    else:  # every run loops: the calls of a conversation are a multiple of the looping run's
        assert all(n % per_turn[0] == 0 for n in turns.values())


def _request(sent: float | None, model: str = "gpt-4o-mini", stream: bool = False) -> RecordedRequest:
    headers = {} if sent is None else {SENT_AT_HEADER: f"{sent:.6f}"}
    body = {"model": model, "messages": [{"role": "user", "content": "hi"}], "stream": stream}
    return RecordedRequest("POST", "/v1/chat/completions", headers, body)


def test_the_provider_counts_its_latency_from_when_the_app_made_the_call(tmp_path: Any) -> None:
    """The time a loaded machine took before the request reached the provider is spent inside
    the scripted latency, not added to it: the app measures the scripted latency."""
    state = ScenarioState(tmp_path / "scenario.json")
    now = 1_000.0
    plain = reply_for(state, seed=3, clock=lambda: now)
    timed = reply_for(state, seed=3, clock=lambda: now)
    for late in (0.0, 0.3, 0.9):
        scripted = plain(_request(None)).latency
        assert scripted > 1.0  # realistic latencies, well above what a load spike adds
        assert timed(_request(now - late)).latency == pytest.approx(max(0.0, scripted - late))
    plain(_request(None))  # the two handlers draw the same numbers in step
    assert timed(_request(now - 60.0)).latency == 0.0  # later than scripted: answered at once
    plain_stream, timed_stream = plain(_request(None, stream=True)), timed(_request(now - 0.2, stream=True))
    assert timed_stream.time_to_first_token == pytest.approx(plain_stream.time_to_first_token - 0.2)
    assert timed_stream.chunk_delay == plain_stream.chunk_delay
    # a bad header is ignored (the full scripted latency)
    bad = RecordedRequest("POST", "/v1/chat/completions", {SENT_AT_HEADER: "soon"}, _request(None).body)
    assert plain(_request(None)).latency == pytest.approx(timed(bad).latency)
