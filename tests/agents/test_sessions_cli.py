"""A captured conversation, from the real ``openai`` client to ``llmpulse sessions show``.

An app instrumented with llmpulse (content on) holds a 3-turn conversation through the real
``openai`` package against the fake provider, inside ``llmpulse.context(conversation_id=...)``;
its spans go over OTLP/HTTP to a real ``llmpulse serve`` whose quality engine judges whole
sessions with the same fake provider. Once the session closes, ``llmpulse sessions list`` and
``show`` (separate processes, on the store the processor wrote) give the turns exactly, in
order, with their figures and the session verdict.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import llmpulse.instrumentation as llmpulse
from llmpulse.instrumentation import Settings
from llmpulse.processor.agents.cli import format_session
from llmpulse.processor.store.factory import open_store
from llmpulse.processor.store.sessions import SessionRecord, StoredSession, TurnRecord
from llmpulse.stack import components
from llmpulse.testing.fake_provider import FakeProvider, FakeReply, RecordedRequest
from llmpulse.testing.polling import wait_until

QUESTIONS = ["How do I reset my password?", "I see no Security tab.", "Found it, thanks. And 2FA?"]
ANSWERS = {q: f"Answer {n}: open Settings, then step {n}." for n, q in enumerate(QUESTIONS, start=1)}
VERDICT = {
    "goal_met": 2,
    "frustration_free": 1,
    "consistency": 4,
    "explanation": "The user had to ask twice.",
}


def _reply(request: RecordedRequest) -> FakeReply:
    messages = request.body["messages"]
    if "conversations between a user" in messages[0]["content"]:
        return FakeReply(text=json.dumps(VERDICT))
    question = messages[-1]["content"]
    return FakeReply(text=ANSWERS[question], input_tokens=10 * len(messages), output_tokens=7)


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    tracer_provider = TracerProvider(resource=Resource.create({"service.name": "helpdesk"}))
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    llmpulse.instrument(tracer_provider=tracer_provider, settings=Settings(content="on"))
    yield exporter
    llmpulse.uninstrument()


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "llmpulse.cli", "sessions", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def converse(provider: FakeProvider, conversation_id: str) -> list[str]:
    """The app: three turns of one conversation, the history sent each time; the response ids."""
    history: list[dict[str, str]] = []
    ids = []
    with openai.OpenAI(base_url=provider.openai_base_url, api_key="t", max_retries=0) as client:
        for question in QUESTIONS:
            history.append({"role": "user", "content": question})
            with llmpulse.context(feature="support", conversation_id=conversation_id):
                reply = client.chat.completions.create(model="gpt-4o-mini", messages=history)
            answer = reply.choices[0].message.content or ""
            history.append({"role": "assistant", "content": answer})
            ids.append(reply.id)
    return ids


def serve_config(tmp_path: Path, provider: FakeProvider) -> Path:
    config = tmp_path / "llmpulse.toml"
    config.write_text(
        f"""
[quality]
judge_rate = 0.0
audit_rate = 0.0
db_path = "{tmp_path / "quality.db"}"
[quality.judge]
base_url = "{provider.openai_base_url}"
model = "judge-model"
api_key = "test"
[drift]
enabled = false
[agents]
judge_rate = 1.0
session_timeout_s = 1.0
tick_s = 0.1
"""
    )
    return config


def test_a_three_turn_conversation_shows_turn_by_turn(
    tmp_path: Path, spans: InMemorySpanExporter, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = tmp_path / "quality.db"
    with FakeProvider() as provider:
        provider.set_handler(_reply)
        converse(provider, "conv-42")
        finished = spans.get_finished_spans()
        assert len({s.context.trace_id for s in finished}) == 3  # one trace per turn
        grpc, http, admin = (components.free_port() for _ in range(3))
        argv = [
            sys.executable,
            "-m",
            "llmpulse.cli",
            "serve",
            "--config",
            str(serve_config(tmp_path, provider)),
        ]
        argv += ["--grpc-port", str(grpc), "--http-port", str(http), "--admin-port", str(admin)]
        with components.ManagedProcess(
            "processor", argv, f"http://127.0.0.1:{admin}/readyz", tmp_path / "p.log"
        ):
            response = httpx.post(
                f"http://127.0.0.1:{http}/v1/traces",
                content=encode_spans(finished).SerializeToString(),
                headers={"Content-Type": "application/x-protobuf"},
            )
            assert response.status_code == 200, response.text

            def judged() -> int | None:
                with open_store(str(db)) as store:
                    found = store.sessions.sessions(limit=None)
                return found[0].id if found and found[0].verdict is not None else None

            session_id = wait_until(
                judged, timeout=30, interval=0.2, message="the session was never stored and judged"
            )
            captured = httpx.get(f"http://127.0.0.1:{admin}/api/status").json()["agents"]["captured_sessions"]
            assert captured == {"stored": 1, "verdicts": 1, "dropped_from_store": 0, "refused_queue_full": 0}

    trace_ids = [
        format(s.context.trace_id, "032x") for s in sorted(finished, key=lambda s: s.start_time or 0)
    ]
    shown = _cli("show", str(session_id), "--db", str(db), "--json")
    assert shown.returncode == 0, shown.stderr
    view = json.loads(shown.stdout)
    assert (view["service"], view["feature"], view["conversation_id"]) == ("helpdesk", "support", "conv-42")
    assert view["turns"] == 3 and view["abandoned"] is False
    turns = view["transcript"]
    assert [t["user"] for t in turns] == QUESTIONS
    assert [t["answer"] for t in turns] == [ANSWERS[q] for q in QUESTIONS]
    assert [t["trace_id"] for t in turns] == trace_ids
    assert [t["turn"] for t in turns] == [1, 2, 3]
    assert [(t["input_tokens"], t["output_tokens"], t["llm_calls"]) for t in turns] == [
        (10, 7, 1),
        (30, 7, 1),
        (50, 7, 1),
    ]
    assert {t["model"] for t in turns} == {"gpt-4o-mini"} and all(t["cost_usd"] > 0 for t in turns)
    assert view["cost_usd"] == pytest.approx(sum(t["cost_usd"] for t in turns), rel=1e-9)
    assert view["last_trace_id"] == trace_ids[-1]
    verdict = view["verdict"]
    assert verdict["verdict"] == "bad" and verdict["explanation"] == VERDICT["explanation"]
    assert verdict["scores"] == {"goal_met": 2.0, "frustration_free": 1.0, "consistency": 4.0}

    text = _cli("show", str(session_id), "--db", str(db))
    assert text.returncode == 0, text.stderr
    lines = text.stdout.splitlines()
    users = [line for line in lines if line.startswith("  user: ")]
    assert users == [f"  user: {q}" for q in QUESTIONS]
    assert [line for line in lines if line.startswith("  assistant: ")] == [
        f"  assistant: {ANSWERS[q]}" for q in QUESTIONS
    ]
    assert "verdict: bad, overall 2.33 (consistency 4, frustration_free 1, goal_met 2)" in lines

    listed = _cli("list", "--db", str(db), "--service", "helpdesk", "--json")
    assert listed.returncode == 0, listed.stderr
    (row,) = [json.loads(line) for line in listed.stdout.splitlines()]
    assert row["id"] == session_id and row["turns"] == 3 and row["verdict"]["verdict"] == "bad"
    assert _cli("list", "--db", str(db), "--verdict", "good").stdout.strip() == "no captured sessions"
    bad = _cli("list", "--db", str(db), "--verdict", "bad").stdout.splitlines()
    assert len(bad) == 2 and bad[1].split()[0] == str(session_id)  # the header, then the session
    assert (
        _cli("list", "--db", str(db), "--service", "nobody").stdout.strip()
        == "no captured sessions of service nobody"
    )

    for bad in (("list", "--db", str(db), "--limit", "0"), ("show", "1", "--db", str(tmp_path / "none.db"))):
        refused = _cli(*bad)
        assert refused.returncode == 2 and refused.stdout == "", bad
        assert len(refused.stderr.splitlines()) == 1 and "Traceback" not in refused.stderr, refused.stderr
        assert not (tmp_path / "none.db").exists()  # never an empty database from a typo
    missing = _cli("show", "999", "--db", str(db))
    assert missing.returncode == 1
    assert (
        missing.stderr
        == "llmpulse sessions show: no session 999 in the store (llmpulse sessions list shows the ids)\n"
    )


def test_show_keeps_a_hostile_answer_off_the_terminal() -> None:
    turn = TurnRecord(b"\x01" * 16, "two\nlines", "\x1b[2J\x1b[31mred\u2028next", 1.8e9, 0.5, model="m")
    record = SessionRecord("shop", "chat", "conv\x07", 1.8e9, 1.8e9, 1, turn.trace_id, (turn,))
    text = format_session(StoredSession(7, record, None))
    assert "\x1b" not in text and "\x07" not in text and "\u2028" not in text
    assert "  assistant: \\x1b[2J\\x1b[31mred\\u2028next" in text.splitlines()
    assert "  user: two\n        lines" in text  # the continuation stays under the turn
    assert "conversation conv\\x07" in text and "verdict: not judged" in text
