"""The session pages in headless Debian chromium: from a flagged sample to its conversation.

A real SQLite store holds a captured 3-turn session (with its session-judge verdict) and a
flagged sample whose trace is the session's second turn, as the processor writes them. The
browser opens the sample's page, follows the link to the session, reads the turns in order as a
conversation with their figures, trace links and verdict, goes back to the sample through the
session's flagged-sample link, and finds the session in the list. Hostile turn content stays text.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from llmpulse.processor.quality.store import FlaggedRecord
from llmpulse.processor.store.factory import open_store
from llmpulse.processor.store.sessions import SessionRecord, SessionVerdict, TurnRecord
from tests.console.conftest import ConsoleFactory
from tests.console.test_console_browser import _shoot

pytestmark = pytest.mark.components

NOW = 1_800_000_000.0
HOSTILE = '<script>window.__pwned = 1</script><img src=x onerror="window.__pwned = 2"> and 2FA?'
QUESTIONS = ["How do I reset my password?", "I see no Security tab.", HOSTILE]
ANSWERS = [
    "Open Settings, then Security.",
    "It is under Account, then Security.",
    "Use the Authenticator app.",
]


def _trace(n: int) -> bytes:
    return (0xABC0 + n).to_bytes(16, "big")


def _fill(db: Path) -> tuple[int, int, int]:
    """(session id, id of the flagged sample in it, id of a sample outside any session)."""
    turns = tuple(
        TurnRecord(
            trace_id=_trace(n),
            user=q,
            answer=a,
            started=NOW + 10 * n,
            duration_s=1.25 + n,
            model="gpt-4o-mini",
            llm_calls=1 + n,
            input_tokens=100 * (n + 1),
            output_tokens=20,
            cost_usd=0.0001 * (n + 1),
            error=n == 1,
        )
        for n, (q, a) in enumerate(zip(QUESTIONS, ANSWERS, strict=True))
    )
    record = SessionRecord(
        service="helpdesk",
        feature="support",
        conversation_id="conv-42",
        environment="prod",
        started=NOW,
        ended=NOW + 25,
        turns=3,
        last_trace_id=_trace(2),
        transcript=turns,
        cost_usd=0.0006,
        corrections=1,
    )

    def flagged(trace: bytes) -> FlaggedRecord:
        return FlaggedRecord(
            service="helpdesk",
            feature="support",
            model="gpt-4o-mini",
            trace_id=trace,
            sources=("check",),
            reasons=("empty_answer",),
            created=NOW + 11,
            output="It is under Account, then Security.",
        )

    with open_store(str(db)) as store:
        session_id = store.sessions.add_session(record, now=NOW + 30)
        store.sessions.set_verdict(
            "helpdesk", _trace(2), SessionVerdict("bad", 2.33, {"goal_met": 2.0}, "asked twice", NOW + 40)
        )
        inside = store.flagged.add(flagged(_trace(1)))
        outside = store.flagged.add(flagged(_trace(99)))
    return session_id, inside, outside


def test_a_flagged_sample_leads_to_its_conversation(
    browser: Any, start_console: ConsoleFactory, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    db = tmp_path / "quality.db"
    session_id, inside, outside = _fill(db)
    _, base = start_console("--db", str(db), "--trace-url-template", "http://traces.example/trace/{trace_id}")
    page = browser.new_page(viewport={"width": 1280, "height": 900})

    page.goto(f"{base}/samples/{outside}")
    assert page.locator("#session-link").count() == 0
    assert "not part of a captured session" in page.locator("#in-session").inner_text().lower()

    page.goto(f"{base}/samples/{inside}")
    assert page.locator(f"#s{inside} .output").inner_text() == ANSWERS[1]
    page.locator("#session-link").click()
    page.wait_for_url(f"{base}/sessions/{session_id}")
    assert page.locator("h1").inner_text() == f"Session {session_id} · helpdesk / support"
    meta = page.locator("#session-meta").inner_text()
    assert "conv-42" in meta and "3 turn(s)" in meta and "1 correction(s)" in meta
    verdict = page.locator("#verdict").inner_text()
    assert "bad, overall 2.33" in verdict and "goal_met 2.0" in verdict and "asked twice" in verdict
    assert page.locator(".turn .user-text").all_inner_texts() == QUESTIONS  # in order, the script as text
    assert page.locator(".turn .answer-text").all_inner_texts() == ANSWERS
    assert page.evaluate("window.__pwned") is None
    second = page.locator("#turn-2")
    assert second.get_attribute("data-trace") == _trace(1).hex()
    second_meta = second.locator(".meta").inner_text()
    assert "2.250 s" in second_meta and "2 call(s)" in second_meta and "200 in / 20 out" in second_meta
    assert "a call failed" in second_meta
    assert second.locator("a.trace").get_attribute("href") == f"http://traces.example/trace/{_trace(1).hex()}"
    _shoot(page, request, "session", tmp_path)

    links = page.locator("#flagged a.flagged-sample")
    assert links.all_inner_texts() == [f"#{inside}"]
    links.first.click()
    page.wait_for_url(f"{base}/samples/{inside}")

    page.goto(f"{base}/sessions")
    rows = page.locator("#sessions tr[data-session]")
    assert rows.count() == 1
    cells = rows.first.locator("td").all_inner_texts()
    assert cells[0] == str(session_id) and cells[4:6] == ["conv-42", "3"] and cells[7] == "bad 2.33"
    page.locator("#verdict-good").click()
    page.wait_for_url(f"{base}/sessions?verdict=good")
    assert page.locator("#no-sessions").count() == 1
    page.locator("#verdict-bad").click()
    page.wait_for_url(f"{base}/sessions?verdict=bad")
    assert page.locator("#sessions tr[data-session]").count() == 1
    page.goto(f"{base}/sessions?service=nobody")
    assert page.locator("#no-sessions").inner_text() == "No captured sessions of nobody."
    assert page.goto(f"{base}/sessions/999").status == 404
    assert page.goto(f"{base}/samples/abc").status == 404
    page.close()
