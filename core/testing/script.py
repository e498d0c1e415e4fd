"""Reply scripts for ``llmpulse fake-provider --script FILE``: rules, a default, one parser.

A script is a JSON or TOML file (by extension: ``.json``, else TOML)::

    judge = true                      # answer the processor's judge prompt with a verdict (default)

    [default]                         # when no rule matches (optional)
    text = "Hello from the script."

    [[replies]]                       # tried in order; the first whose conditions all hold answers
    model = "gpt-4o"                  # the request's model equals this
    contains = "refund"               # the last user message contains this (case-insensitive)
    text = "Refunds take five days."
    latency = 0.2                     # seconds before the answer starts
    time_to_first_token = 0.1         # streaming: delay before the first chunk
    chunk_delay = 0.02                # streaming: delay between chunks
    chunks = 4

    [[replies]]
    contains = "weather"
    tool_calls = [{ name = "get_weather", arguments = { city = "Paris" } }]

    [[replies]]
    model = "gpt-4o-mini"
    status = 429
    error_message = "slow down"       # in the API's own error shape; or error_body = {...} verbatim

A rule without ``model`` or ``contains`` matches every request. Reply keys are the fields of
:class:`~llmpulse.testing.fake_reply.FakeReply` (``docs/fake-provider.md``), its ``model`` (the
model the answer names) spelled ``response_model``. Whether a reply is
streamed is the client's choice (``stream: true``); the script sets the stream's timing.
:func:`load_script` raises :class:`ScriptError` with one line naming the file and the key.
"""

from __future__ import annotations

import json
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from llmpulse.testing.fake_judge import judge_reply
from llmpulse.testing.fake_reply import FakeReply, RecordedRequest

__all__ = ["Rule", "Script", "ScriptError", "last_user_message", "load_script", "parse_script"]

_MATCH_KEYS = ("model", "contains")
# A rule's ``model`` is the request's model it matches; the reply's own model is ``response_model``.
_REPLY_KEYS = tuple("response_model" if f.name == "model" else f.name for f in fields(FakeReply))
_TOP_KEYS = ("default", "judge", "replies")


class ScriptError(ValueError):
    """The script file cannot be used; the message is one line naming the file and the problem."""


@dataclass(frozen=True)
class Rule:
    """A reply and the conditions a request must meet for it (None: any)."""

    reply: FakeReply
    model: str | None = None
    contains: str | None = None

    def matches(self, model: str, last_user: str) -> bool:
        """Whether a request with this model and last user message gets this rule's reply."""
        if self.model is not None and self.model != model:
            return False
        return self.contains is None or self.contains.lower() in last_user.lower()


@dataclass(frozen=True)
class Script:
    """Rules tried in order, then the default; judge requests get a verdict when ``judge``."""

    rules: tuple[Rule, ...] = ()
    default: FakeReply | None = None
    judge: bool = True

    def handler(self, fallback: FakeReply | None = None) -> Callable[[RecordedRequest], FakeReply]:
        """The :meth:`FakeProvider.set_handler` function of this script."""
        default = self.default or fallback or FakeReply()

        def reply(request: RecordedRequest) -> FakeReply:
            body = request.body if isinstance(request.body, dict) else {}
            model = str(body.get("model", ""))
            last_user = last_user_message(body)
            for rule in self.rules:
                if rule.matches(model, last_user):
                    return rule.reply
            if self.judge:
                verdict = judge_reply(body)
                if verdict is not None:
                    return verdict
            return default

        return reply


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(
            str(block.get("text", "")) for block in content if isinstance(block, dict) and "text" in block
        )
    return ""


def last_user_message(body: dict[str, Any]) -> str:
    """The text of the last user message of a chat, messages or responses request ('' if none)."""
    messages = body.get("messages")
    if not isinstance(messages, list):
        messages = body.get("input")
    if isinstance(messages, str):
        return messages
    if isinstance(messages, list):
        for message in reversed(messages):
            if isinstance(message, dict) and message.get("role", "user") == "user":
                return _text(message.get("content"))
    prompt = body.get("prompt")
    return prompt if isinstance(prompt, str) else ""


def _reply(spec: Any, where: str, match_keys: tuple[str, ...] = ()) -> FakeReply:
    if not isinstance(spec, dict):
        raise ScriptError(f"{where} must be a table of reply keys, got {type(spec).__name__}")
    unknown = sorted(set(spec) - set(_REPLY_KEYS))
    if unknown:
        valid = ", ".join(sorted((*match_keys, *_REPLY_KEYS)))
        raise ScriptError(f"{where}: unknown key(s) {', '.join(unknown)}; valid: {valid}")
    values = dict(spec)
    if "response_model" in values:
        values["model"] = values.pop("response_model")
    calls = values.get("tool_calls", ())
    if not isinstance(calls, list | tuple) or not all(isinstance(c, dict) and "name" in c for c in calls):
        raise ScriptError(f"{where}.tool_calls must be a list of tables with a 'name' (and 'arguments')")
    values["tool_calls"] = tuple(calls)
    if calls and "text" not in values:
        values["text"] = ""  # a model that calls a tool usually says nothing else
    if "error_body" in values and not isinstance(values["error_body"], dict):
        raise ScriptError(f"{where}.error_body must be a table (the JSON body sent verbatim)")
    try:
        return FakeReply(**values)
    except (TypeError, ValueError) as exc:
        raise ScriptError(f"{where}: {exc}") from None


def parse_script(document: Any, source: str = "script") -> Script:
    """A :class:`Script` from a decoded JSON or TOML document."""
    if not isinstance(document, dict):
        raise ScriptError(f"{source}: the top level must be a table/object")
    unknown = sorted(set(document) - set(_TOP_KEYS))
    if unknown:
        raise ScriptError(f"{source}: unknown key(s) {', '.join(unknown)}; valid: {', '.join(_TOP_KEYS)}")
    judge = document.get("judge", True)
    if not isinstance(judge, bool):
        raise ScriptError(f"{source}: judge must be true or false, got {judge!r}")
    replies = document.get("replies", [])
    if not isinstance(replies, list):
        raise ScriptError(f"{source}: replies must be a list of tables ([[replies]] in TOML)")
    rules = []
    for index, spec in enumerate(replies):
        where = f"{source}: replies[{index}]"
        if not isinstance(spec, dict):
            raise ScriptError(f"{where} must be a table, got {type(spec).__name__}")
        conditions = {key: spec[key] for key in _MATCH_KEYS if key in spec}
        for key, value in conditions.items():
            if not isinstance(value, str):
                raise ScriptError(f"{where}.{key} must be a string, got {value!r}")
        reply = _reply({k: v for k, v in spec.items() if k not in _MATCH_KEYS}, where, _MATCH_KEYS)
        rules.append(Rule(reply, **conditions))
    default = document.get("default")
    return Script(
        rules=tuple(rules),
        default=None if default is None else _reply(default, f"{source}: default"),
        judge=judge,
    )


def load_script(path: Path) -> Script:
    """Read and parse a script file (``.json`` as JSON, anything else as TOML)."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ScriptError(f"{path}: cannot read the script: {exc.strerror or exc}") from None
    try:
        document = json.loads(raw) if path.suffix.lower() == ".json" else tomllib.loads(raw.decode())
    except (ValueError, UnicodeDecodeError) as exc:
        kind = "JSON" if path.suffix.lower() == ".json" else "TOML"
        raise ScriptError(f"{path}: not valid {kind}: {str(exc).splitlines()[0]}") from None
    return parse_script(document, str(path))
