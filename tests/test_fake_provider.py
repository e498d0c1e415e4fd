"""The fake provider against the real ``openai`` and ``anthropic`` packages, sync and async."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import anthropic
import openai
import pytest

from llmpulse.testing.fake_provider import FakeProvider, FakeReply, RecordedRequest

CHAT_MODEL = "gpt-4o-mini"
CLAUDE_MODEL = "claude-sonnet-5-5"
USER = [{"role": "user", "content": "What is the capital of France?"}]
WEATHER_CALL = {"name": "get_weather", "arguments": {"city": "Paris"}}


@pytest.fixture
def provider() -> Iterator[FakeProvider]:
    with FakeProvider() as fake:
        yield fake


@pytest.fixture
def oai(provider: FakeProvider) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=provider.openai_base_url, api_key="test", max_retries=0) as client:
        yield client


@pytest.fixture
def claude(provider: FakeProvider) -> Iterator[anthropic.Anthropic]:
    with anthropic.Anthropic(base_url=provider.base_url, api_key="test", max_retries=0) as client:
        yield client


def claude_create(client: anthropic.Anthropic, **kwargs: object) -> anthropic.types.Message:
    return client.messages.create(model=CLAUDE_MODEL, max_tokens=64, messages=USER, **kwargs)


# -- OpenAI chat completions ----------------------------------------------------------------------


def test_chat_completion_echoes_scripted_text_usage_and_request(
    provider: FakeProvider, oai: openai.OpenAI
) -> None:
    provider.enqueue(
        FakeReply(text="Paris.", input_tokens=11, output_tokens=7, cached_input_tokens=3, reasoning_tokens=2)
    )
    result = oai.chat.completions.create(model=CHAT_MODEL, messages=USER)

    assert result.choices[0].message.content == "Paris."
    assert result.choices[0].finish_reason == "stop"
    assert result.model == CHAT_MODEL
    assert result.id.startswith("chatcmpl-")
    usage = result.usage
    assert usage is not None
    assert (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == (11, 7, 18)
    assert usage.prompt_tokens_details is not None and usage.prompt_tokens_details.cached_tokens == 3
    assert usage.completion_tokens_details is not None
    assert usage.completion_tokens_details.reasoning_tokens == 2
    [request] = provider.requests
    assert (request.method, request.path) == ("POST", "/v1/chat/completions")
    assert request.body["messages"] == USER
    assert request.headers["authorization"] == "Bearer test"


def test_unset_token_counts_are_derived_from_request_and_reply_words(
    provider: FakeProvider, oai: openai.OpenAI
) -> None:
    provider.enqueue(FakeReply(text="one two three"), FakeReply(text="one two three", model="pinned-model"))
    first = oai.chat.completions.create(model=CHAT_MODEL, messages=USER)
    second = oai.chat.completions.create(model=CHAT_MODEL, messages=USER)

    assert first.usage is not None and second.usage is not None
    assert first.usage.prompt_tokens == 6 + 3  # words in USER plus the constant overhead
    assert first.usage.completion_tokens == 3
    assert first.usage == second.usage
    assert first.id != second.id
    assert second.model == "pinned-model"


def test_streamed_chat_without_include_usage_has_no_usage(provider: FakeProvider, oai: openai.OpenAI) -> None:
    provider.enqueue(FakeReply(text="The capital is Paris."))
    chunks = list(oai.chat.completions.create(model=CHAT_MODEL, messages=USER, stream=True))

    text = "".join(chunk.choices[0].delta.content or "" for chunk in chunks)
    assert text == "The capital is Paris."
    assert all(chunk.usage is None for chunk in chunks)
    assert chunks[-1].choices[0].finish_reason == "stop"
    content_chunks = [chunk for chunk in chunks if chunk.choices[0].delta.content]
    assert len(content_chunks) == 4  # one per word by default


def test_streamed_chat_with_include_usage_ends_with_usage_chunk(
    provider: FakeProvider, oai: openai.OpenAI
) -> None:
    provider.enqueue(FakeReply(text="The capital is Paris.", chunks=2, input_tokens=20, output_tokens=9))
    stream = oai.chat.completions.create(
        model=CHAT_MODEL,
        messages=USER,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)

    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None
    assert (chunks[-1].usage.prompt_tokens, chunks[-1].usage.completion_tokens) == (20, 9)
    assert all(chunk.usage is None for chunk in chunks[:-1])
    assert len([chunk for chunk in chunks if chunk.choices and chunk.choices[0].delta.content]) == 2


def test_chat_stream_helper_accumulates_text_and_tool_calls(
    provider: FakeProvider, oai: openai.OpenAI
) -> None:
    provider.enqueue(FakeReply(text="", tool_calls=(WEATHER_CALL,)))
    with oai.chat.completions.stream(model=CHAT_MODEL, messages=USER) as stream:
        final = stream.get_final_completion()

    choice = final.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.tool_calls is not None
    call = choice.message.tool_calls[0]
    assert call.type == "function"
    assert call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"city": "Paris"}


async def test_async_chat_and_stream(provider: FakeProvider) -> None:
    provider.enqueue(FakeReply(text="async hello"), FakeReply(text="async stream"))
    async with openai.AsyncOpenAI(base_url=provider.openai_base_url, api_key="test", max_retries=0) as client:
        result = await client.chat.completions.create(model=CHAT_MODEL, messages=USER)
        stream = await client.chat.completions.create(
            model=CHAT_MODEL,
            messages=USER,
            stream=True,
            stream_options={"include_usage": True},
        )
        pieces = [chunk.choices[0].delta.content or "" async for chunk in stream if chunk.choices]

    assert result.choices[0].message.content == "async hello"
    assert "".join(pieces) == "async stream"


def test_chat_finish_reasons_refusal_and_malformed_json(provider: FakeProvider, oai: openai.OpenAI) -> None:
    provider.enqueue(
        FakeReply(finish_reason="length"),
        FakeReply(finish_reason="content_filter"),
        FakeReply(refusal="I can't help with that."),
        FakeReply(tool_calls=(WEATHER_CALL,)),
        FakeReply(text="a list of cities", malformed_json=True),
    )

    def ask() -> openai.types.chat.ChatCompletion:
        return oai.chat.completions.create(model=CHAT_MODEL, messages=USER)

    assert ask().choices[0].finish_reason == "length"
    assert ask().choices[0].finish_reason == "content_filter"
    refused = ask().choices[0]
    assert refused.message.refusal == "I can't help with that."
    assert refused.message.content is None
    tool_message = ask().choices[0]
    assert tool_message.finish_reason == "tool_calls"
    assert tool_message.message.tool_calls is not None
    assert tool_message.message.tool_calls[0].function.name == "get_weather"
    broken = ask().choices[0].message.content
    assert broken is not None and broken.startswith('{"answer": ')
    with pytest.raises(json.JSONDecodeError):
        json.loads(broken)


def test_streamed_refusal_arrives_as_refusal_deltas(provider: FakeProvider, oai: openai.OpenAI) -> None:
    provider.enqueue(FakeReply(refusal="No can do."))
    chunks = list(oai.chat.completions.create(model=CHAT_MODEL, messages=USER, stream=True))

    assert "".join(chunk.choices[0].delta.refusal or "" for chunk in chunks) == "No can do."
    assert not any(chunk.choices[0].delta.content for chunk in chunks)


# -- OpenAI completions, embeddings, responses, Azure ----------------------------------------------


def test_completions_plain_and_streamed(provider: FakeProvider, oai: openai.OpenAI) -> None:
    provider.enqueue(
        FakeReply(text="once upon a time", finish_reason="length"), FakeReply(text="streamed words")
    )
    plain = oai.completions.create(model="gpt-3.5-turbo-instruct", prompt="Tell a story")
    stream = oai.completions.create(
        model="gpt-3.5-turbo-instruct",
        prompt="Tell a story",
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)

    assert plain.choices[0].text == "once upon a time"
    assert plain.choices[0].finish_reason == "length"
    assert plain.usage is not None and plain.usage.completion_tokens == 4
    assert "".join(chunk.choices[0].text for chunk in chunks if chunk.choices) == "streamed words"
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 2


def test_embeddings_are_deterministic_and_honour_dimensions_and_encoding(
    provider: FakeProvider, oai: openai.OpenAI
) -> None:
    default = oai.embeddings.create(model="text-embedding-3-small", input=["alpha", "beta"])
    as_float = oai.embeddings.create(
        model="text-embedding-3-small", input=["alpha", "beta"], encoding_format="float"
    )
    sized = oai.embeddings.create(model="text-embedding-3-small", input="alpha", dimensions=20)

    # The client asks for base64 by default and decodes it to the same floats.
    assert [len(item.embedding) for item in default.data] == [8, 8]
    assert default.data[0].embedding == as_float.data[0].embedding
    assert as_float.data[0].embedding != as_float.data[1].embedding
    assert len(sized.data[0].embedding) == 20
    assert sized.data[0].embedding[:8] == as_float.data[0].embedding
    assert as_float.usage.prompt_tokens == 2 + 3
    assert provider.requests[0].body["encoding_format"] == "base64"
    assert provider.requests[1].body["encoding_format"] == "float"


def test_responses_plain_with_usage_details_and_incomplete(
    provider: FakeProvider, oai: openai.OpenAI
) -> None:
    provider.enqueue(
        FakeReply(
            text="Bonjour.", input_tokens=12, output_tokens=6, cached_input_tokens=4, reasoning_tokens=3
        ),
        FakeReply(text="cut", finish_reason="length"),
    )
    result = oai.responses.create(model=CHAT_MODEL, input="Say hello in French")
    truncated = oai.responses.create(model=CHAT_MODEL, input="Say hello in French")

    assert result.output_text == "Bonjour."
    assert result.status == "completed"
    assert result.usage is not None
    assert (result.usage.input_tokens, result.usage.output_tokens, result.usage.total_tokens) == (12, 6, 18)
    assert result.usage.input_tokens_details.cached_tokens == 4
    assert result.usage.output_tokens_details.reasoning_tokens == 3
    assert truncated.status == "incomplete"
    assert truncated.incomplete_details is not None
    assert truncated.incomplete_details.reason == "max_output_tokens"


def test_responses_stream_events_and_final_response(provider: FakeProvider, oai: openai.OpenAI) -> None:
    provider.enqueue(
        FakeReply(text="Streaming responses work.", output_tokens=5), FakeReply(tool_calls=(WEATHER_CALL,))
    )
    with oai.responses.stream(model=CHAT_MODEL, input="hi") as stream:
        kinds = [event.type for event in stream]
        final = stream.get_final_response()
    raw = list(oai.responses.create(model=CHAT_MODEL, input="weather?", stream=True))

    assert kinds[:2] == ["response.created", "response.in_progress"]
    assert kinds.count("response.output_text.delta") == 3
    assert kinds[-1] == "response.completed"
    assert final.output_text == "Streaming responses work."
    assert final.usage is not None and final.usage.output_tokens == 5
    completed = raw[-1]
    assert completed.type == "response.completed"
    function_calls = [item for item in completed.response.output if item.type == "function_call"]
    assert [(call.name, json.loads(call.arguments)) for call in function_calls] == [
        ("get_weather", {"city": "Paris"})
    ]


async def test_async_responses_stream(provider: FakeProvider) -> None:
    provider.enqueue(FakeReply(text="async responses"))
    async with (
        openai.AsyncOpenAI(base_url=provider.openai_base_url, api_key="test", max_retries=0) as client,
        client.responses.stream(model=CHAT_MODEL, input="hi") as stream,
    ):
        deltas = [event.delta async for event in stream if event.type == "response.output_text.delta"]
        final = await stream.get_final_response()

    assert "".join(deltas) == final.output_text == "async responses"


def test_azure_client_uses_deployment_as_model(provider: FakeProvider) -> None:
    with openai.AzureOpenAI(
        azure_endpoint=provider.base_url, api_version="2024-10-21", api_key="test", max_retries=0
    ) as client:
        result = client.chat.completions.create(model="prod-gpt4o", messages=USER)

    assert result.model == "prod-gpt4o"
    [request] = provider.requests
    assert request.path.startswith("/openai/deployments/prod-gpt4o/chat/completions?api-version=")


# -- Anthropic Messages -------------------------------------------------------------------------


def test_messages_create_with_cache_usage(provider: FakeProvider, claude: anthropic.Anthropic) -> None:
    provider.enqueue(
        FakeReply(
            text="Paris.",
            input_tokens=30,
            output_tokens=4,
            cached_input_tokens=100,
            cache_creation_input_tokens=50,
        )
    )
    message = claude_create(claude)

    assert message.content[0].type == "text" and message.content[0].text == "Paris."
    assert message.stop_reason == "end_turn"
    assert message.model == CLAUDE_MODEL
    assert (message.usage.input_tokens, message.usage.output_tokens) == (30, 4)
    assert message.usage.cache_read_input_tokens == 100
    assert message.usage.cache_creation_input_tokens == 50
    assert "anthropic-version" in provider.requests[0].headers


def test_messages_raw_stream_event_sequence(provider: FakeProvider, claude: anthropic.Anthropic) -> None:
    provider.enqueue(FakeReply(text="two words", input_tokens=9, output_tokens=2, cached_input_tokens=5))
    events = list(claude_create(claude, stream=True))

    assert [event.type for event in events] == [
        "message_start",
        "content_block_start",
        "content_block_delta",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    start, delta = events[0], events[-2]
    assert start.message.usage.input_tokens == 9
    assert start.message.usage.cache_read_input_tokens == 5
    assert delta.delta.stop_reason == "end_turn"
    assert delta.usage.output_tokens == 2


def test_messages_stream_helper_with_tool_use(provider: FakeProvider, claude: anthropic.Anthropic) -> None:
    provider.enqueue(FakeReply(text="Let me check.", tool_calls=(WEATHER_CALL,), output_tokens=12))
    with claude.messages.stream(model=CLAUDE_MODEL, max_tokens=64, messages=USER) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()

    assert text == "Let me check."
    assert final.stop_reason == "tool_use"
    tool = final.content[1]
    assert tool.type == "tool_use" and tool.name == "get_weather" and tool.input == {"city": "Paris"}
    assert final.usage.output_tokens == 12


async def test_async_messages_create_and_stream_helper(provider: FakeProvider) -> None:
    provider.enqueue(FakeReply(text="plain"), FakeReply(text="streamed reply"))
    async with anthropic.AsyncAnthropic(base_url=provider.base_url, api_key="test", max_retries=0) as client:
        message = await client.messages.create(model=CLAUDE_MODEL, max_tokens=64, messages=USER)
        async with client.messages.stream(model=CLAUDE_MODEL, max_tokens=64, messages=USER) as stream:
            final = await stream.get_final_message()

    assert message.content[0].type == "text" and message.content[0].text == "plain"
    assert final.content[0].type == "text" and final.content[0].text == "streamed reply"


def test_anthropic_stop_reasons(provider: FakeProvider, claude: anthropic.Anthropic) -> None:
    provider.enqueue(
        FakeReply(finish_reason="length"),
        FakeReply(finish_reason="max_tokens"),
        FakeReply(refusal="I won't."),
        FakeReply(finish_reason="content_filter"),
    )
    assert [claude_create(claude).stop_reason for _ in range(4)] == [
        "max_tokens",
        "max_tokens",
        "refusal",
        "refusal",
    ]


# -- Errors and retries ----------------------------------------------------------------------------


def test_openai_error_statuses_raise_the_sdk_exceptions(provider: FakeProvider, oai: openai.OpenAI) -> None:
    provider.enqueue(FakeReply(status=429), FakeReply(status=500), FakeReply(status=400))

    with pytest.raises(openai.RateLimitError) as rate_limited:
        oai.chat.completions.create(model=CHAT_MODEL, messages=USER)
    with pytest.raises(openai.InternalServerError):
        oai.chat.completions.create(model=CHAT_MODEL, messages=USER)
    with pytest.raises(openai.BadRequestError) as bad:
        oai.chat.completions.create(model=CHAT_MODEL, messages=USER)

    assert rate_limited.value.response.headers["retry-after"] == "1"
    assert rate_limited.value.code == "rate_limit_exceeded"
    assert bad.value.type == "invalid_request_error"


def test_openai_default_retries_are_visible_in_recorded_requests(provider: FakeProvider) -> None:
    # 429 carries a 20 ms retry-after-ms, so the SDK's two default retries are quick.
    provider.enqueue(FakeReply(status=429), FakeReply(status=429), FakeReply(text="third time lucky"))
    with openai.OpenAI(base_url=provider.openai_base_url, api_key="test") as client:
        result = client.chat.completions.create(model=CHAT_MODEL, messages=USER)

    assert result.choices[0].message.content == "third time lucky"
    assert [request.headers["x-stainless-retry-count"] for request in provider.requests] == ["0", "1", "2"]


def test_anthropic_error_statuses(provider: FakeProvider, claude: anthropic.Anthropic) -> None:
    provider.enqueue(FakeReply(status=529), FakeReply(status=429), FakeReply(status=500))

    with pytest.raises(anthropic.APIStatusError) as overloaded:
        claude_create(claude)
    with pytest.raises(anthropic.RateLimitError) as rate_limited:
        claude_create(claude)
    with pytest.raises(anthropic.InternalServerError):
        claude_create(claude)

    assert overloaded.value.status_code == 529
    assert isinstance(overloaded.value, anthropic.OverloadedError)
    assert (
        isinstance(overloaded.value.body, dict)
        and overloaded.value.body["error"]["type"] == "overloaded_error"
    )
    assert rate_limited.value.response.headers["retry-after"] == "1"


# -- Timing ----------------------------------------------------------------------------------------


def test_latency_delays_the_whole_response(provider: FakeProvider, oai: openai.OpenAI) -> None:
    provider.enqueue(FakeReply(latency=0.2))
    started = time.monotonic()
    oai.chat.completions.create(model=CHAT_MODEL, messages=USER)
    assert time.monotonic() - started >= 0.2


def test_time_to_first_token_and_chunk_delay_are_observable(
    provider: FakeProvider, oai: openai.OpenAI
) -> None:
    provider.enqueue(FakeReply(text="a b c", time_to_first_token=0.3, chunk_delay=0.1))
    started = time.monotonic()
    arrivals = []
    for chunk in oai.chat.completions.create(model=CHAT_MODEL, messages=USER, stream=True):
        if chunk.choices and chunk.choices[0].delta.content:
            arrivals.append(time.monotonic() - started)

    # Lower bounds only: the server cannot send chunk n before ttft + (n - 1) * chunk_delay.
    assert len(arrivals) == 3
    assert arrivals == sorted(arrivals)
    assert arrivals[0] >= 0.3
    assert arrivals[2] >= 0.3 + 2 * 0.1


def test_anthropic_time_to_first_token(provider: FakeProvider, claude: anthropic.Anthropic) -> None:
    provider.enqueue(FakeReply(text="slow start", time_to_first_token=0.25))
    started = time.monotonic()
    first_text = None
    with claude.messages.stream(model=CLAUDE_MODEL, max_tokens=64, messages=USER) as stream:
        for event in stream:
            if event.type == "message_start":
                message_start = time.monotonic() - started
            if event.type == "text" and first_text is None:
                first_text = time.monotonic() - started

    assert first_text is not None and first_text >= 0.25
    assert message_start < first_text


# -- Scripting, recording, server behaviour ----------------------------------------------------------


def test_queue_is_fifo_across_endpoints_then_default(provider: FakeProvider, oai: openai.OpenAI) -> None:
    provider.set_default(FakeReply(text="default"))
    provider.enqueue(FakeReply(text="first"), FakeReply(text="second"))

    chat = oai.chat.completions.create(model=CHAT_MODEL, messages=USER)
    response = oai.responses.create(model=CHAT_MODEL, input="x")
    models = oai.models.list()  # a GET consumes no reply
    after = oai.chat.completions.create(model=CHAT_MODEL, messages=USER)

    assert (chat.choices[0].message.content, response.output_text) == ("first", "second")
    assert after.choices[0].message.content == "default"
    assert CHAT_MODEL in [model.id for model in models]
    assert len(provider.requests) == 4
    provider.clear()
    assert provider.requests == []


def test_handler_scripts_replies_per_request(provider: FakeProvider, oai: openai.OpenAI) -> None:
    def by_model(request: RecordedRequest) -> FakeReply:
        return FakeReply(text=f"you asked {request.body['model']}")

    provider.enqueue(FakeReply(text="queued"))
    provider.set_handler(by_model)
    scripted = oai.chat.completions.create(model="model-a", messages=USER)
    provider.set_handler(None)
    queued = oai.chat.completions.create(model="model-a", messages=USER)

    assert scripted.choices[0].message.content == "you asked model-a"
    assert queued.choices[0].message.content == "queued"


def test_concurrent_requests_each_take_one_queued_reply(provider: FakeProvider, oai: openai.OpenAI) -> None:
    texts = [f"reply {index}" for index in range(24)]
    provider.enqueue(*(FakeReply(text=text, latency=0.01) for text in texts))

    def ask(_: int) -> str | None:
        result = oai.chat.completions.create(model=CHAT_MODEL, messages=USER)
        return result.choices[0].message.content

    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(pool.map(ask, range(24)))

    assert sorted(answers, key=str) == sorted(texts)
    assert len(provider.requests) == 24


def test_client_disconnect_mid_stream_leaves_server_healthy(
    provider: FakeProvider, oai: openai.OpenAI, caplog: pytest.LogCaptureFixture
) -> None:
    provider.enqueue(FakeReply(text="many words " * 20, chunk_delay=0.02))
    stream = oai.chat.completions.create(model=CHAT_MODEL, messages=USER, stream=True)
    next(iter(stream))
    stream.close()

    result = oai.chat.completions.create(model=CHAT_MODEL, messages=USER)
    assert result.choices[0].message.content == "Hello from the fake provider."
    assert not [record for record in caplog.records if record.levelname in ("WARNING", "ERROR")]


def test_healthz_models_and_unknown_routes(provider: FakeProvider) -> None:
    with urllib.request.urlopen(provider.base_url + "/healthz") as response:
        assert json.load(response) == {"status": "ok"}
    request = urllib.request.Request(
        provider.base_url + "/v1/models", headers={"anthropic-version": "2023-06-01"}
    )
    with urllib.request.urlopen(request) as response:
        body = json.load(response)
    assert CLAUDE_MODEL in [model["id"] for model in body["data"]] and body["has_more"] is False
    with pytest.raises(urllib.error.HTTPError) as missing:
        urllib.request.urlopen(provider.base_url + "/v1/nothing-here")
    assert missing.value.code == 404
    missing.value.close()
    assert [request.path for request in provider.requests] == ["/v1/models", "/v1/nothing-here"]


def test_stop_with_idle_keep_alive_connection_returns(provider: FakeProvider) -> None:
    client = openai.OpenAI(base_url=provider.openai_base_url, api_key="test", max_retries=0)
    client.chat.completions.create(model=CHAT_MODEL, messages=USER)
    stopper = threading.Thread(target=provider.stop)
    stopper.start()
    stopper.join(timeout=10)
    client.close()
    assert not stopper.is_alive()
    provider.stop()  # idempotent


def test_invalid_finish_reason_is_rejected() -> None:
    with pytest.raises(ValueError, match="finish_reason 'done' is not one of"):
        FakeReply(finish_reason="done")


def test_cli_serves_on_a_free_port_until_sigterm() -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "llmpulse.cli", "fake-provider", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        base_url = process.stdout.readline().strip()
        assert base_url.startswith("http://127.0.0.1:")
        with openai.OpenAI(base_url=base_url + "/v1", api_key="test", max_retries=0) as client:
            result = client.chat.completions.create(model=CHAT_MODEL, messages=USER)
        assert result.choices[0].message.content == "Hello from the fake provider."
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        for pipe in (process.stdout, process.stderr):
            if pipe is not None:
                pipe.close()


def test_a_failing_handler_becomes_a_logged_api_shaped_500(
    provider: FakeProvider, claude: anthropic.Anthropic, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(_request: RecordedRequest) -> FakeReply:
        raise KeyError("no scenario for this prompt")

    provider.set_handler(broken)
    with pytest.raises(anthropic.InternalServerError) as failed:
        claude_create(claude)

    assert isinstance(failed.value.body, dict) and failed.value.body["error"]["type"] == "api_error"
    assert any("handler failed" in record.getMessage() for record in caplog.records)


def test_stop_cuts_a_slow_stream_short(provider: FakeProvider, oai: openai.OpenAI) -> None:
    provider.enqueue(FakeReply(text="slow " * 10, chunk_delay=30.0))
    stream = oai.chat.completions.create(model=CHAT_MODEL, messages=USER, stream=True)
    next(iter(stream))
    started = time.monotonic()
    provider.stop()
    stopped_after = time.monotonic() - started
    stream.close()

    assert stopped_after < 30.0
