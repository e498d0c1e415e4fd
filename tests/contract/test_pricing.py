"""The shared pricing table: coverage, cache-aware cost, and the override file that reloads."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import pytest

from llmpulse.contract.pricing import PricingSource, PricingTable
from llmpulse.testing.clock import FakeClock

CURRENT_MODELS = (
    "gpt-4.1", "gpt-4.1-mini", "gpt-4.1-nano", "gpt-4o", "gpt-4o-mini", "o1", "o3", "o3-mini",
    "o4-mini", "gpt-5", "gpt-5-mini", "gpt-5-nano", "claude-3-5-sonnet-20241022",
    "claude-3-5-haiku-20241022", "claude-3-7-sonnet-20250219", "claude-sonnet-4-20250514",
    "claude-sonnet-4-5-20250929", "claude-opus-4-20250514", "claude-opus-4-1-20250805",
    "claude-haiku-4-5-20251001", "gemini-2.0-flash", "gemini-2.0-flash-001", "gemini-2.5-flash",
    "gemini-2.5-pro", "models/gemini-2.5-flash",
)  # fmt: skip


@pytest.mark.parametrize("model", CURRENT_MODELS)
def test_current_models_are_priced(model: str) -> None:
    assert PricingTable.load().price(model) is not None, model


def test_every_entry_names_its_source_and_date() -> None:
    shipped = PricingTable.shipped()
    assert "list prices" in shipped["source"].lower()
    for name, entry in shipped["models"].items():
        assert entry["source"].startswith("https://"), name
        assert len(entry["effective_date"]) == 10 and entry["effective_date"] <= shipped["effective_date"], (
            name
        )


def test_anthropic_cache_reads_and_both_cache_writes_at_their_rates() -> None:
    # 10,000 input tokens: 2,000 read from the cache, 3,000 written to it (1,000 with a 1-hour TTL)
    cost = PricingTable.load().cost_of(
        "claude-sonnet-4-5-20250929", 10_000, 500, cache_read=2_000, cache_write=3_000, cache_write_1h=1_000
    )
    expected = (5_000 * 3.0 + 2_000 * 0.3 + 2_000 * 3.75 + 1_000 * 6.0 + 500 * 15.0) / 1e6
    assert cost == pytest.approx(expected, rel=1e-12)


def test_openai_cache_reads_at_the_cached_rate() -> None:
    cost = PricingTable.load().cost_of("gpt-4.1-mini", 1_000, 100, cache_read=600)
    assert cost == pytest.approx((400 * 0.4 + 600 * 0.1 + 100 * 1.6) / 1e6, rel=1e-12)


def test_unknown_model_has_no_cost() -> None:
    assert PricingTable.load().cost_of("gpt-6-preview", 100, 10) is None


def _write(path: Path, data: object, stamp: int) -> None:
    path.write_text(json.dumps(data) if not isinstance(data, str) else data)
    os.utime(path, ns=(stamp, stamp))  # a distinct mtime even within one clock tick


def test_override_reloads_without_restart_and_a_bad_file_keeps_the_previous_table(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "prices.json"
    _write(path, {"version": "a", "models": {"gpt-6-preview": {"input": 1.0, "output": 2.0}}}, 1_000_000_000)
    clock = FakeClock()
    source = PricingSource(path, check_interval=1.0, clock=clock)
    assert source.current().version.endswith("+a")
    assert source.current().cost_of("gpt-6-preview", 1_000_000, 0) == pytest.approx(1.0)

    _write(path, {"version": "b", "models": {"gpt-6-preview": {"input": 4.0, "output": 2.0}}}, 2_000_000_000)
    assert source.current().version.endswith("+a")  # not checked again within the interval
    clock.advance(1.0)
    assert source.current().version.endswith("+b")
    assert source.current().cost_of("gpt-6-preview", 1_000_000, 0) == pytest.approx(4.0)

    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="llmpulse.contract.pricing"):
        for stamp, bad in enumerate(
            (
                "{not json",
                {"models": {"x": {"input": 1.0}}},
                {"models": {"x": {"input": -1, "output": 1}}},
                {"models": []},
            ),
            start=3,
        ):
            _write(path, bad, stamp * 1_000_000_000)
            clock.advance(1.0)
            assert source.current().version.endswith("+b"), bad  # the previous table stays in force
            assert source.error is not None and str(path) in source.error
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 4 and all(
        "\n" not in line and "event=pricing_override_rejected" in line for line in lines
    )
    assert "not valid JSON" in lines[0] and "needs 'input' and 'output'" in lines[1]
    assert "must be a number >= 0" in lines[2] and "must be JSON objects" in lines[3]

    path.unlink()
    clock.advance(1.0)
    assert source.current().version == PricingTable.load().version  # file gone: the shipped table
