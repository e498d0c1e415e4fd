"""The shipped pricing table, its resolution rules and the user override."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from llmpulse.contract import attributes as A
from llmpulse.contract.pricing import PricingTable
from llmpulse.testing.fake_provider import FakeProvider, FakeReply


def test_shipped_table_has_version_and_date() -> None:
    table = PricingTable.load()
    assert table.version == "2026.12.1"
    assert table.effective_date == "2026-12-01"


@pytest.mark.parametrize(
    ("name", "base"),
    [
        ("gpt-4o", "gpt-4o"),
        ("gpt-4o-2024-08-06", "gpt-4o"),
        ("GPT-4o-mini-2024-07-18", "gpt-4o-mini"),
        ("chatgpt-4o-latest", "gpt-4o"),
        ("gpt-3.5-turbo-0125", "gpt-3.5-turbo"),
        ("ft:gpt-4o-mini:acme::abc123", "gpt-4o-mini"),
        ("openai/gpt-4.1", "gpt-4.1"),
        ("claude-sonnet-4-5-20250929", "claude-sonnet-4-5"),
        ("claude-haiku-4-5@20251001", "claude-haiku-4-5"),
        ("claude-3-5-haiku-latest", "claude-3-5-haiku"),
    ],
)
def test_aliases_and_snapshots_resolve_to_the_base_model(name: str, base: str) -> None:
    price = PricingTable.load().price(name)
    assert price is not None and price.model == base


@pytest.mark.parametrize("name", ["llama3:8b", "my-deployment", "", None, "gpt-9-ultra"])
def test_unknown_models_have_no_price(name: str | None) -> None:
    assert PricingTable.load().price(name) is None


def test_user_override_file(tmp_path: Path) -> None:
    override = tmp_path / "prices.json"
    override.write_text(
        json.dumps(
            {
                "version": "acme-2026-11",
                "models": {"llama3": {"input": 0.1, "output": 0.2}, "gpt-4o": {"input": 2.0, "output": 8.0}},
                "aliases": {"my-deployment": "gpt-4o"},
            }
        )
    )
    table = PricingTable.load(override)
    assert table.version == "2026.12.1+acme-2026-11"
    assert table.price("llama3:8b") is None  # tags are not snapshots
    assert table.price("llama3").cost(1_000_000, 1_000_000) == pytest.approx(0.3)
    assert table.price("my-deployment").cost(1000, 1000) == pytest.approx((1000 * 2.0 + 1000 * 8.0) / 1e6)


def test_broken_override_falls_back_to_shipped(tmp_path: Path) -> None:
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    assert PricingTable.load(broken).version == "2026.12.1"
    assert PricingTable.load(tmp_path / "missing.json").price("gpt-4o") is not None


def test_override_applies_to_spans(make_spans, oai, provider: FakeProvider, tmp_path: Path) -> None:
    override = tmp_path / "prices.json"
    override.write_text(
        json.dumps({"version": "local", "models": {"local-llama": {"input": 1.0, "output": 3.0}}})
    )
    spans = make_spans(pricing_file=str(override))
    provider.enqueue(FakeReply(input_tokens=1000, output_tokens=100), FakeReply())
    oai.chat.completions.create(model="local-llama", messages=[{"role": "user", "content": "x"}])
    oai.chat.completions.create(model="mystery-model", messages=[{"role": "user", "content": "x"}])
    priced, unpriced = spans.llm()
    assert priced.attributes[A.COST_USD] == pytest.approx((1000 * 1.0 + 100 * 3.0) / 1e6)
    assert priced.attributes[A.PRICING_VERSION] == "2026.12.1+local"
    assert unpriced.attributes[A.UNPRICED] is True
    assert A.COST_USD not in unpriced.attributes
