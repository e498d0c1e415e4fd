"""The shared test helpers in llmpulse.testing: FakeClock, wait_until, the OTLP builders."""

from __future__ import annotations

import pytest

from llmpulse.contract import attributes as A
from llmpulse.testing.clock import FakeClock
from llmpulse.testing.otlp import (
    T0,
    any_value,
    from_any_value,
    llm_attributes,
    make_request,
    make_span,
    sdk_spans,
    span_attributes,
)
from llmpulse.testing.polling import wait_until, wait_until_async


async def test_fake_clock_moves_only_when_told() -> None:
    clock = FakeClock(10.0)
    assert clock() == 10.0
    assert clock.advance(5) == 15.0 and clock() == 15.0
    await clock.sleep(0.5)
    assert clock() == 15.5 and clock.slept == [0.5]


def test_wait_until_returns_the_first_truthy_value() -> None:
    answers = iter([None, 0, "", [3]])
    assert wait_until(lambda: next(answers), interval=0) == [3]


def test_wait_until_fails_with_the_message_and_builds_it_only_then() -> None:
    built: list[bool] = []

    def message() -> str:
        built.append(True)
        return "the thing never happened"

    assert wait_until(lambda: True, timeout=0, message=message) is True
    assert built == []
    with pytest.raises(AssertionError, match=r"the thing never happened \(waited 0 s\)"):
        wait_until(lambda: False, timeout=0, message=message)
    with pytest.raises(AssertionError, match="never became true"):
        wait_until(lambda: None, timeout=0)


async def test_wait_until_async_awaits_coroutine_predicates() -> None:
    calls: list[int] = []

    async def ready() -> int | None:
        calls.append(1)
        return len(calls) if len(calls) == 3 else None

    assert await wait_until_async(ready, interval=0) == 3
    with pytest.raises(AssertionError, match="still down"):
        await wait_until_async(lambda: False, timeout=0, message="still down")


def test_any_value_round_trips_python_values() -> None:
    for value in (True, 7, 0.25, "x", b"\x00", ["a", 1, [2.5]]):
        assert from_any_value(any_value(value)) == value
    assert from_any_value(any_value(("a", "b"))) == ["a", "b"]
    with pytest.raises(TypeError, match="no OTLP AnyValue for dict"):
        any_value({"a": 1})


def test_make_span_and_make_request() -> None:
    span = make_span(llm_attributes(**{A.FEATURE: "search", A.COST_USD: None}), duration_s=1.5, status_code=2)
    attrs = span_attributes(span)
    assert attrs[A.FEATURE] == "search" and A.COST_USD not in attrs
    assert attrs[A.GEN_AI_RESPONSE_FINISH_REASONS] == ["stop"]
    assert span.end_time_unix_nano - span.start_time_unix_nano == 1_500_000_000
    assert span.start_time_unix_nano == T0 and span.status.code == 2
    assert not make_span({}, status_code=None).HasField("status")
    assert make_span({}, start_ns=10, end_ns=20).end_time_unix_nano == 20

    request = make_request([span, span], resource={"service.name": "app"})
    (resource_spans,) = request.resource_spans
    assert span_attributes(resource_spans.resource) == {"service.name": "app"}
    assert resource_spans.scope_spans[0].scope.name == "llmpulse"
    assert len(resource_spans.scope_spans[0].spans) == 2
    bare = make_request([span], scope=None).resource_spans[0]
    assert not bare.HasField("resource") and not bare.scope_spans[0].HasField("scope")


def test_sdk_spans_are_finished_with_the_given_durations() -> None:
    spans = sdk_spans([({"a": 1}, 0.25), ({}, 2.0)])
    assert [s.attributes.get("a") for s in spans] == [1, None]
    assert [(s.end_time or 0) - (s.start_time or 0) for s in spans] == [250_000_000, 2_000_000_000]
    assert spans[0].resource.attributes["service.name"] == "app"
