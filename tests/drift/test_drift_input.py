"""From span content attributes to drift samples, including truncated JSON."""

from __future__ import annotations

import json

from llmpulse.processor.drift.engine import DriftSample
from llmpulse.processor.drift.input import last_user_text, response_chars, sample_from_content

INPUT = json.dumps(
    [
        {"role": "system", "parts": [{"type": "text", "content": "be brief"}]},
        {"role": "user", "parts": [{"type": "text", "content": "first question"}]},
        {"role": "assistant", "parts": [{"type": "text", "content": "an answer"}]},
        {"role": "user", "parts": [{"type": "text", "content": 'where is my "order"?'}, {"type": "image"}]},
    ]
)
OUTPUT = json.dumps([{"role": "assistant", "parts": [{"type": "text", "content": "In transit."}]}])


def test_sample_from_content() -> None:
    sample = sample_from_content("support", INPUT, OUTPUT, "stop", 12.5)
    assert sample == DriftSample("support", 'where is my "order"?', len("In transit."), "stop", 12.5)


def test_truncated_documents_still_give_text() -> None:
    cut = INPUT.index("order") + len("or")  # inside the last user message
    assert last_user_text(INPUT[:cut] + "…[truncated]") == 'where is my "or'
    # cut inside the assistant turn: the last user message that survived is the first one, alone
    cut = INPUT.index("an answer") + len("an")
    assert last_user_text(INPUT[:cut] + "…[truncated]") == "first question"
    # cut inside the system prompt: no user text at all (not the system prompt)
    cut = INPUT.index("be brief") + len("be")
    assert last_user_text(INPUT[:cut] + "…[truncated]") == ""
    cut = OUTPUT.index("transit") + len("trans")
    assert response_chars(OUTPUT[:cut] + "…[truncated]") == len("In trans")


def test_no_user_text_gives_no_sample() -> None:
    assert sample_from_content("f", None) is None
    assert sample_from_content("f", json.dumps([{"role": "system", "parts": []}])) is None
    assert sample_from_content("f", json.dumps([{"role": "user", "content": "  "}])) is None
    assert sample_from_content("f", json.dumps([{"role": "user", "content": "old shape"}])) == DriftSample(
        "f", "old shape"
    )


def test_drift_metric_names_are_distinct_and_prefixed() -> None:
    from llmpulse.processor.drift import metric_names as D
    from llmpulse.processor.metrics import names as M
    from llmpulse.processor.quality import metric_names as Q

    assert all(spec.name.startswith("llmpulse_drift_") for spec in D.DRIFT_METRICS)
    assert not D.DRIFT_EXPORTED_SERIES & M.EXPORTED_SERIES
    assert not D.DRIFT_EXPORTED_SERIES & Q.QUALITY_EXPORTED_SERIES
