"""Message content: off by default, on, sampled by trace id; redaction and truncation."""

from __future__ import annotations

import json

import pytest

import llmpulse
from llmpulse.contract import attributes as A
from llmpulse.contract import environment_variables as E
from llmpulse.contract.redaction import REDACTED_BY_HOOK_FAILURE, Redactor
from llmpulse.contract.sampling import DEFAULT_CONTENT_SAMPLE_RATE, is_sampled
from llmpulse.instrumentation import Settings
from llmpulse.testing.fake_provider import FakeProvider, FakeReply

CONTENT_KEYS = {A.GEN_AI_INPUT_MESSAGES, A.GEN_AI_OUTPUT_MESSAGES, A.GEN_AI_SYSTEM_INSTRUCTIONS}
MESSAGES = [
    {"role": "system", "content": "You are terse."},
    {"role": "user", "content": "My card is 4111 1111 1111 1111, email ann@example.org"},
]


def test_content_is_off_by_default(spans, oai, claude, provider: FakeProvider) -> None:
    oai.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    claude.messages.create(model="claude-haiku-4-5", max_tokens=8, messages=MESSAGES[1:])
    with llmpulse.step("retrieval", query="secret question"):
        pass
    for span in spans.all():
        assert not CONTENT_KEYS & set(span.attributes or {}), span.name
        assert A.GEN_AI_RETRIEVAL_QUERY_TEXT not in (span.attributes or {})


def test_content_on_is_redacted_and_in_semconv_shape(make_spans, oai, provider: FakeProvider) -> None:
    spans = make_spans(content="on")
    provider.enqueue(FakeReply(text="Call +1 415 555 0100 or use sk-proj-abcdefghijklmnopqrstuv"))
    oai.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    attrs = spans.one_llm().attributes or {}
    assert json.loads(attrs[A.GEN_AI_SYSTEM_INSTRUCTIONS]) == [{"type": "text", "content": "You are terse."}]
    assert json.loads(attrs[A.GEN_AI_INPUT_MESSAGES]) == [
        {
            "role": "user",
            "parts": [{"type": "text", "content": "My card is [REDACTED:card], email [REDACTED:email]"}],
        }
    ]
    output = json.loads(attrs[A.GEN_AI_OUTPUT_MESSAGES])
    assert output == [
        {
            "role": "assistant",
            "parts": [{"type": "text", "content": "Call [REDACTED:phone] or use [REDACTED:api-key]"}],
            "finish_reason": "stop",
        }
    ]


def test_streamed_content_and_anthropic_system(make_spans, oai, claude, provider: FakeProvider) -> None:
    spans = make_spans(content="on")
    provider.enqueue(FakeReply(text="alpha beta"), FakeReply(text="gamma delta"))
    list(oai.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True))
    with claude.messages.stream(
        model="claude-haiku-4-5", max_tokens=8, system="Be kind.", messages=MESSAGES[1:]
    ) as stream:
        stream.get_final_text()
    chat, message = spans.llm()
    assert json.loads(chat.attributes[A.GEN_AI_OUTPUT_MESSAGES])[0]["parts"][0]["content"] == "alpha beta"
    assert json.loads(message.attributes[A.GEN_AI_OUTPUT_MESSAGES])[0]["parts"][0]["content"] == "gamma delta"
    assert json.loads(message.attributes[A.GEN_AI_SYSTEM_INSTRUCTIONS]) == [
        {"type": "text", "content": "Be kind."}
    ]


def test_sampled_mode_follows_the_shared_sampler(make_spans, oai) -> None:
    rate = 0.5
    spans = make_spans(content="sampled", sample_rate=rate)
    for _ in range(40):
        oai.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES[1:])
    calls = spans.llm()
    with_content = [s for s in calls if A.GEN_AI_INPUT_MESSAGES in s.attributes]
    expected = [s for s in calls if is_sampled(s.context.trace_id, rate)]
    assert [s.context.span_id for s in with_content] == [s.context.span_id for s in expected]
    assert 0 < len(with_content) < len(calls)
    for span in with_content:
        assert span.attributes[A.SAMPLED] is True and span.attributes[A.SAMPLE_RATE] == rate
    for span in calls:
        if span not in with_content:
            assert not CONTENT_KEYS & set(span.attributes)


def test_retrieval_query_captured_when_content_on(make_spans) -> None:
    spans = make_spans(content="on")
    with llmpulse.step("retrieval", data_source="kb", query="where is ann@example.org?"):
        pass
    (span,) = spans.all()
    assert span.attributes[A.GEN_AI_RETRIEVAL_QUERY_TEXT] == "where is [REDACTED:email]?"


def test_user_hook_runs_after_builtins_and_truncation(make_spans, oai, provider: FakeProvider) -> None:
    spans = make_spans(
        content="on", redact=lambda text: text.replace("ACME", "[CLIENT]"), content_max_chars=60
    )
    provider.enqueue(FakeReply(text="ACME " * 40))
    oai.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "about ACME"}])
    attrs = spans.one_llm().attributes
    assert "ACME" not in attrs[A.GEN_AI_INPUT_MESSAGES]
    assert attrs[A.GEN_AI_OUTPUT_MESSAGES].endswith("…[truncated]")
    assert len(attrs[A.GEN_AI_OUTPUT_MESSAGES]) == 60 + len("…[truncated]")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Authorization: Bearer abc.def-ghi_12345", "Authorization: [REDACTED:bearer]"),
        ("key sk-ant-api03-AbCdEfGhIjKlMnOpQrSt here", "key [REDACTED:api-key] here"),
        ("AKIAIOSFODNN7EXAMPLE", "[REDACTED:api-key]"),
        ("mail a.b+c@sub.example.co.uk now", "mail [REDACTED:email] now"),
        ("card 5500-0000-0000-0004.", "card [REDACTED:card]."),
        ("call (415) 555-0100", "call [REDACTED:phone]"),
        ("order 12345 shipped", "order 12345 shipped"),
    ],
)
def test_builtin_patterns(text: str, expected: str) -> None:
    assert Redactor()(text) == expected


def test_failing_hook_drops_the_text() -> None:
    def boom(text: str) -> str:
        raise RuntimeError(text)

    assert Redactor(boom)("anything") == REDACTED_BY_HOOK_FAILURE


def test_settings_from_env() -> None:
    settings = Settings.from_env(
        {
            E.OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT: "sampled",
            E.LLMPULSE_SAMPLE_RATE: "0.25",
            "LLMPULSE_HASH_USER_IDS": "false",
            "LLMPULSE_ANTHROPIC_SDK_SPANS": "keep",
        }
    )
    assert (settings.content, settings.sample_rate, settings.hash_user_ids) == ("sampled", 0.25, False)
    assert settings.anthropic_sdk_spans == "keep"
    capture = E.OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT
    assert Settings.from_env({capture: "span_only"}).content == "on"
    assert Settings.from_env({capture: "NO_CONTENT"}).content == "off"
    assert Settings.from_env({E.LLMPULSE_SAMPLE_RATE: "lots"}).sample_rate == DEFAULT_CONTENT_SAMPLE_RATE


def test_sampled_alone_is_enough_to_send_content(make_spans, oai) -> None:
    settings = Settings.from_env({E.OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT: "sampled"})
    assert (settings.content, settings.sample_rate) == ("sampled", DEFAULT_CONTENT_SAMPLE_RATE)
    spans = make_spans(content="sampled", sample_rate=settings.sample_rate)
    for _ in range(100):
        oai.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES[1:])
    calls = spans.llm()
    with_content = [s for s in calls if A.GEN_AI_INPUT_MESSAGES in s.attributes]
    assert 0 < len(with_content) < len(calls)
    # Every span says the rate, so the processor can tell "not sampled" from "capture off".
    assert all(s.attributes[A.SAMPLE_RATE] == DEFAULT_CONTENT_SAMPLE_RATE for s in calls)
    assert all(A.SAMPLED not in s.attributes for s in calls if s not in with_content)


def test_content_off_never_serializes(spans, oai, claude, monkeypatch) -> None:
    from llmpulse.instrumentation.content import ContentPolicy

    calls: list[object] = []
    monkeypatch.setattr(ContentPolicy, "encode", lambda self, value: calls.append(value) or "[]")
    monkeypatch.setattr(ContentPolicy, "text", lambda self, value: calls.append(value) or "")
    oai.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    list(oai.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True))
    claude.messages.create(model="claude-haiku-4-5", max_tokens=8, messages=MESSAGES[1:])
    assert len(spans.llm()) == 3
    assert calls == []
