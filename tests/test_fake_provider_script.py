"""``llmpulse fake-provider --script FILE`` and its judge answers, with the real SDK clients."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import anthropic
import httpx
import openai
import pytest

from llmpulse.testing.fake_judge import FAKE_JUDGE_EXPLANATION, judge_reply
from llmpulse.testing.script import ScriptError, load_script

SCRIPT = """
[default]
text = "Scripted default."

[[replies]]
model = "gpt-4o"
contains = "refund"
text = "Refunds take five days."
output_tokens = 4

[[replies]]
contains = "WEATHER"
tool_calls = [{ name = "get_weather", arguments = { city = "Paris" }, id = "call_1" }]

[[replies]]
model = "gpt-4o-mini"
contains = "busy"
status = 429
error_message = "slow down, scripted"

[[replies]]
contains = "overloaded"
status = 529
error_body = { type = "error", error = { type = "overloaded_error", message = "verbatim body" } }

[[replies]]
contains = "stream me"
text = "one two three four"
latency = 0.05
time_to_first_token = 0.3
chunk_delay = 0.01
chunks = 4
"""


def _serve(*args: str) -> tuple[subprocess.Popen[str], str]:
    process = subprocess.Popen(
        [sys.executable, "-m", "llmpulse.cli", "fake-provider", "--port", "0", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    base_url = process.stdout.readline().strip()
    assert base_url.startswith("http://127.0.0.1:"), process.stderr.read() if process.stderr else ""
    return process, base_url


@pytest.fixture
def scripted(tmp_path: Path) -> Iterator[str]:
    script = tmp_path / "replies.toml"
    script.write_text(SCRIPT)
    process, base_url = _serve("--script", str(script))
    try:
        yield base_url
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
        for pipe in (process.stdout, process.stderr):
            if pipe is not None:
                pipe.close()


def _user(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


def test_openai_replies_match_model_and_last_user_message(scripted: str) -> None:
    with openai.OpenAI(base_url=scripted + "/v1", api_key="t", max_retries=0) as client:
        refund = client.chat.completions.create(model="gpt-4o", messages=_user("Can I get a Refund?"))
        assert refund.choices[0].message.content == "Refunds take five days."
        assert refund.usage is not None and refund.usage.completion_tokens == 4
        # same words, other model: the rule needs both, so the default answers
        other = client.chat.completions.create(model="gpt-4o-mini", messages=_user("refund?"))
        assert other.choices[0].message.content == "Scripted default."
        # only the LAST user message counts
        history = [*_user("refund"), {"role": "assistant", "content": "ok"}, *_user("thanks")]
        assert client.chat.completions.create(model="gpt-4o", messages=history).choices[
            0
        ].message.content == ("Scripted default.")
        tool = client.chat.completions.create(model="gpt-4o", messages=_user("what's the weather"))
        call = tool.choices[0].message.tool_calls[0]  # type: ignore[index]
        assert tool.choices[0].finish_reason == "tool_calls" and not tool.choices[0].message.content
        assert (call.id, call.function.name, json.loads(call.function.arguments)) == (
            "call_1",
            "get_weather",
            {"city": "Paris"},
        )
        with pytest.raises(openai.RateLimitError, match="slow down, scripted"):
            client.chat.completions.create(model="gpt-4o-mini", messages=_user("are you busy"))
        started = time.monotonic()
        stream = client.chat.completions.create(model="gpt-4o", messages=_user("stream me"), stream=True)
        pieces, first = [], None
        for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                first = first or time.monotonic() - started
                pieces.append(chunk.choices[0].delta.content)
        assert "".join(pieces) == "one two three four" and len(pieces) == 4
        assert first is not None and first >= 0.3


def test_anthropic_replies_tools_errors_and_streams(scripted: str) -> None:
    with anthropic.Anthropic(base_url=scripted, api_key="t", max_retries=0) as client:
        model = "claude-haiku-4-5"
        plain = client.messages.create(model=model, max_tokens=32, messages=_user("hello"))
        assert plain.content[0].text == "Scripted default."  # type: ignore[union-attr]
        tool = client.messages.create(model=model, max_tokens=32, messages=_user("Weather in Paris?"))
        assert tool.stop_reason == "tool_use"
        block = tool.content[-1]
        assert (block.type, block.name, block.input) == ("tool_use", "get_weather", {"city": "Paris"})  # type: ignore[union-attr]
        with pytest.raises(anthropic.APIStatusError) as failed:
            client.messages.create(model=model, max_tokens=32, messages=_user("overloaded?"))
        assert failed.value.status_code == 529
        assert failed.value.body == {
            "type": "error",
            "error": {"type": "overloaded_error", "message": "verbatim body"},
        }
        with client.messages.stream(model=model, max_tokens=32, messages=_user("stream me")) as stream:
            assert stream.get_final_text() == "one two three four"


def test_a_json_script_works_the_same(tmp_path: Path) -> None:
    script = tmp_path / "replies.json"
    script.write_text(
        json.dumps({"replies": [{"contains": "ping", "text": "pong"}], "default": {"text": "?"}})
    )
    process, base_url = _serve("--script", str(script))
    try:
        with openai.OpenAI(base_url=base_url + "/v1", api_key="t", max_retries=0) as client:
            assert (
                client.chat.completions.create(model="m", messages=_user("ping")).choices[0].message.content
                == "pong"
            )
            assert (
                client.chat.completions.create(model="m", messages=_user("x")).choices[0].message.content
                == "?"
            )
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=10)
        for pipe in (process.stdout, process.stderr):
            if pipe is not None:
                pipe.close()


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        (
            "typo.toml",
            "[[replies]]\ncontain = 'x'\ntext = 'y'\n",
            "replies[0]: unknown key(s) contain; valid: cache_creation_input_tokens, "
            "cached_input_tokens, chunk_delay, chunks, contains,",
        ),
        ("top.toml", "[defaults]\ntext = 'y'\n", "unknown key(s) defaults; valid: default, judge, replies"),
        ("broken.toml", "[[replies]\n", "not valid TOML"),
        ("broken.json", "{", "not valid JSON"),
        ("finish.toml", "[default]\nfinish_reason = 'done'\n", "finish_reason 'done' is not one of"),
        ("status.toml", "[default]\nstatus = 42\n", "status must be an HTTP status"),
        ("tools.toml", "[default]\ntool_calls = ['x']\n", "tool_calls must be a list of tables"),
    ],
)
def test_a_bad_script_is_one_line_and_exit_2(tmp_path: Path, name: str, text: str, message: str) -> None:
    script = tmp_path / name
    script.write_text(text)
    result = subprocess.run(
        [sys.executable, "-m", "llmpulse.cli", "fake-provider", "--port", "0", "--script", str(script)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("llmpulse fake-provider: bad script: "), result.stderr
    assert message in lines[0]
    with pytest.raises(ScriptError):
        load_script(script)


def test_a_missing_script_is_one_line(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "llmpulse.cli", "fake-provider", "--script", str(tmp_path / "none.toml")],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2 and "cannot read the script" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_judge_requests_get_a_verdict_in_the_shape_asked_for_and_others_do_not() -> None:
    process, base_url = _serve()
    try:
        system = (
            "You are a strict evaluator of answers produced by an AI assistant.\n"
            'Reply with one JSON object and nothing else, exactly these keys: "correctness", "tone", '
            '"groundedness", "explanation".'
        )
        body = {
            "model": "fake-judge",
            "messages": [{"role": "system", "content": system}, *_user("ANSWER: hi")],
        }
        answer = httpx.post(base_url + "/v1/chat/completions", json=body, timeout=10).json()
        verdict = json.loads(answer["choices"][0]["message"]["content"])
        assert verdict == {
            "correctness": 4,
            "tone": 4,
            "groundedness": 4,
            "explanation": FAKE_JUDGE_EXPLANATION,
        }
        plain = httpx.post(
            base_url + "/v1/chat/completions", json={"model": "m", "messages": _user("hi")}, timeout=10
        )
        assert plain.json()["choices"][0]["message"]["content"] == "Hello from the fake provider."
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=10)
        for pipe in (process.stdout, process.stderr):
            if pipe is not None:
                pipe.close()
    assert judge_reply({"messages": _user("You are a strict evaluator")}) is None  # only in a system prompt
