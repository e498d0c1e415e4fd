"""The one content parser: complete documents, cut documents, and the two engines' readings."""

from __future__ import annotations

import json

import pytest

from llmpulse.contract.content import TRUNCATION_MARKER, Content, parse_content

USER = {
    "role": "user",
    "parts": [{"type": "text", "content": "first"}, {"type": "text", "content": "second"}],
}
INPUT = json.dumps([{"role": "system", "parts": [{"type": "text", "content": "be brief"}]}, USER])
OUTPUT = json.dumps([{"role": "assistant", "parts": [{"type": "text", "content": "the answer"}]}])
SYSTEM = json.dumps([{"type": "text", "content": "Answer in JSON."}])


def test_a_complete_call_is_read_the_same_by_both_engines() -> None:
    content = parse_content(INPUT, OUTPUT, SYSTEM)
    assert content.input is not None and content.input.decoded and not content.input.truncated
    assert content.input_messages() == json.loads(INPUT)
    assert content.output_text() == "the answer"
    assert content.system_text() == "Answer in JSON."
    # the engines join a message's text parts differently; each keeps its reading
    assert content.last_user_text() == "first\nsecond"
    assert content.response_chars() == len("the answer")


def test_a_cut_document_is_absent_for_quality_and_salvaged_for_drift() -> None:
    cut = INPUT[: INPUT.index("second") + 3] + TRUNCATION_MARKER
    output = OUTPUT[: OUTPUT.index("answer")] + TRUNCATION_MARKER
    content = parse_content(cut, output)
    assert content.input is not None and content.input.truncated and not content.input.decoded
    assert content.input_messages() is None and content.output_text() is None
    assert content.last_user_text() == "first\nsec"
    assert content.response_chars() == len("the ")


def test_a_cut_that_leaves_no_user_message_gives_no_user_text() -> None:
    cut = INPUT[: INPUT.index('"user"')] + TRUNCATION_MARKER
    assert parse_content(cut).last_user_text() == ""


@pytest.mark.parametrize("raw", ["", "{}", "[1, 2]", "not json"])
def test_documents_of_the_wrong_shape_are_no_messages(raw: str) -> None:
    content = parse_content(raw, raw)
    assert content.input_messages() is None and content.output_text() is None


def test_the_pre_parts_shape_is_read() -> None:
    content = parse_content(json.dumps([{"role": "user", "content": "old shape"}]))
    assert content.last_user_text() == "old shape"
    assert content.input_messages() == [{"role": "user", "content": "old shape"}]


def test_system_instructions_that_are_not_parts_stay_raw() -> None:
    assert parse_content(system_instructions="plain words").system_text() == "plain words"
    assert parse_content().system_text() is None


def test_nothing_captured_is_nothing() -> None:
    content = parse_content()
    assert content == Content()
    assert content.input_messages() is None and content.output_text() is None
    assert content.last_user_text() == "" and content.response_chars() is None


def test_the_parsed_value_is_immutable() -> None:
    content = parse_content(INPUT)
    with pytest.raises(AttributeError):
        content.input = None  # type: ignore[misc]


def test_content_nested_deeper_than_python_recurses_is_malformed_not_a_crash() -> None:
    from llmpulse.contract.content import Document

    document = Document.parse("[" * 100_000 + "]" * 100_000)
    assert document.decoded is False and document.messages() is None
