"""Cost of an LLM call in USD, from the pricing table shipped as ``pricing.json``.

The table lists prices per million tokens for each base model (``input``, ``output`` and
optionally ``cached_input`` and ``cache_write``), a ``version`` and an ``effective_date``.
A user file in the same format overrides or adds models and aliases. Model names resolve
through the aliases, then with dated snapshot suffixes (``-2024-08-06``, ``-20250929``,
``@20250929``) and fine-tune prefixes (``ft:``) removed. An unknown model has no price;
nothing here raises on a lookup.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

_log = logging.getLogger(__name__)

_PER_TOKEN = 1e-6  # the table is per million tokens
_SNAPSHOT = re.compile(r"(?:-\d{4}-\d{2}-\d{2}|-\d{8}|@\d{8}|-\d{4})$")
_MEMO_LIMIT = 4096


@dataclass(frozen=True, slots=True)
class Price:
    """USD per token for one base model."""

    model: str
    input: float
    output: float
    cached_input: float
    cache_write: float

    def cost(self, input_tokens: int, output_tokens: int, cache_read: int = 0, cache_write: int = 0) -> float:
        """Cost of a call. ``input_tokens`` includes the cached and cache-write tokens."""
        uncached = max(input_tokens - cache_read - cache_write, 0)
        return (
            uncached * self.input
            + cache_read * self.cached_input
            + cache_write * self.cache_write
            + output_tokens * self.output
        )


class PricingTable:
    """Model prices with alias and snapshot resolution. Lookups are memoised."""

    def __init__(self, data: dict[str, Any], *, override: dict[str, Any] | None = None) -> None:
        models = dict(data.get("models", {}))
        aliases = dict(data.get("aliases", {}))
        self.version = str(data.get("version", "unknown"))
        self.effective_date = str(data.get("effective_date", ""))
        if override:
            models.update(override.get("models", {}))
            aliases.update(override.get("aliases", {}))
            self.version = f"{self.version}+{override.get('version', 'user')}"
        self._prices = {name.lower(): _price(name, entry) for name, entry in models.items()}
        self._aliases = {alias.lower(): target.lower() for alias, target in aliases.items()}
        self._memo: dict[str, Price | None] = {}

    @classmethod
    def load(cls, override_file: str | Path | None = None) -> PricingTable:
        """The shipped table, with ``override_file`` (same JSON format) applied when given.

        A missing or broken override file is logged and ignored.
        """
        shipped = json.loads(resources.files(__package__).joinpath("pricing.json").read_text("utf-8"))
        override = None
        if override_file:
            try:
                override = json.loads(Path(override_file).read_text("utf-8"))
            except (OSError, ValueError) as exc:
                _log.warning("event=pricing_override_ignored path=%s error=%r", override_file, str(exc))
        return cls(shipped, override=override)

    def price(self, model: str | None) -> Price | None:
        """The price of ``model``, or ``None`` when the table does not know it."""
        if not model:
            return None
        try:
            return self._memo[model]
        except KeyError:
            pass
        found = self._resolve(model)
        if len(self._memo) < _MEMO_LIMIT:
            self._memo[model] = found
        return found

    def _resolve(self, model: str) -> Price | None:
        name = model.strip().lower()
        if name.startswith("ft:"):
            name = name.split(":")[1]
        name = name.rsplit("/", 1)[-1]  # "openai/gpt-4o", "models/..."
        for _ in range(3):
            name = self._aliases.get(name, name)
            if name in self._prices:
                return self._prices[name]
            stripped = _SNAPSHOT.sub("", name)
            if stripped == name:
                break
            name = stripped
        return self._prices.get(self._aliases.get(name, name))


def _price(name: str, entry: dict[str, Any]) -> Price:
    input_price = float(entry["input"]) * _PER_TOKEN
    return Price(
        model=name,
        input=input_price,
        output=float(entry["output"]) * _PER_TOKEN,
        cached_input=float(entry.get("cached_input", entry["input"])) * _PER_TOKEN,
        cache_write=float(entry.get("cache_write", entry["input"])) * _PER_TOKEN,
    )
