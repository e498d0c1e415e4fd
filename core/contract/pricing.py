"""Cost of an LLM call in USD, from the pricing table shipped as ``pricing.json``.

The table lists prices per million tokens for each base model (``input``, ``output`` and
optionally ``cached_input``, ``cache_write`` and ``cache_write_1h``), a ``version`` and an
``effective_date``; each entry names its ``source`` and ``effective_date``. A user file in the
same format overrides or adds models and aliases. Model names resolve through the aliases, then
with dated snapshot suffixes (``-2024-08-06``, ``-20250929``, ``@20250929``) and fine-tune
prefixes (``ft:``) removed. An unknown model has no price; nothing here raises on a lookup.

:meth:`PricingTable.cost_of` is the one function that prices a call: the instrumentation and
the processor both call it, so a call costs the same whichever side priced it.
:class:`PricingSource` is the table in force, reloaded when the override file changes.
"""

from __future__ import annotations

import json
import logging
import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

_log = logging.getLogger(__name__)

_PER_TOKEN = 1e-6  # the table is per million tokens
_SNAPSHOT = re.compile(r"(?:-\d{4}-\d{2}-\d{2}|-\d{8}|@\d{8}|-\d{4})$")
_MEMO_LIMIT = 4096
_PRICE_KEYS = ("input", "output", "cached_input", "cache_write", "cache_write_1h")


class PricingError(ValueError):
    """A pricing file that cannot be used; the message says which file and what is wrong."""


@dataclass(frozen=True, slots=True)
class Price:
    """USD per token for one base model."""

    model: str
    input: float
    output: float
    cached_input: float
    cache_write: float
    cache_write_1h: float

    def cost(
        self,
        input_tokens: int,
        output_tokens: int,
        cache_read: int = 0,
        cache_write: int = 0,
        cache_write_1h: int = 0,
    ) -> float:
        """Cost of a call. ``input_tokens`` includes the cache-read and cache-write tokens;
        ``cache_write`` includes the ``cache_write_1h`` tokens written with a 1-hour TTL."""
        uncached = max(input_tokens - cache_read - cache_write, 0)
        long_writes = min(cache_write_1h, cache_write)
        return (
            uncached * self.input
            + cache_read * self.cached_input
            + (cache_write - long_writes) * self.cache_write
            + long_writes * self.cache_write_1h
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
    def shipped(cls) -> dict[str, Any]:
        """The shipped ``pricing.json`` as parsed JSON."""
        data: dict[str, Any] = json.loads(
            resources.files(__package__).joinpath("pricing.json").read_text("utf-8")
        )
        return data

    @classmethod
    def load(cls, override_file: str | Path | None = None) -> PricingTable:
        """The shipped table, with ``override_file`` (same JSON format) applied when given.

        A missing or broken override file is logged and ignored.
        """
        override = None
        if override_file:
            try:
                override = read_override(override_file)
            except PricingError as exc:
                _log.warning("event=pricing_override_ignored error=%r", str(exc))
        return cls(cls.shipped(), override=override)

    @property
    def models(self) -> list[str]:
        """The base model names the table prices."""
        return sorted(self._prices)

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

    def cost_of(
        self,
        model: str | None,
        input_tokens: int,
        output_tokens: int,
        *,
        cache_read: int = 0,
        cache_write: int = 0,
        cache_write_1h: int = 0,
    ) -> float | None:
        """USD of one call to ``model`` (see :meth:`Price.cost`), or None for an unknown model."""
        price = self.price(model)
        if price is None:
            return None
        return price.cost(input_tokens, output_tokens, cache_read, cache_write, cache_write_1h)

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
    cache_write = float(entry.get("cache_write", entry["input"])) * _PER_TOKEN
    return Price(
        model=name,
        input=input_price,
        output=float(entry["output"]) * _PER_TOKEN,
        cached_input=float(entry.get("cached_input", entry["input"])) * _PER_TOKEN,
        cache_write=cache_write,
        cache_write_1h=float(entry["cache_write_1h"]) * _PER_TOKEN
        if "cache_write_1h" in entry
        else cache_write,
    )


def read_override(path: str | Path) -> dict[str, Any]:
    """Read and check a user pricing file; raises :class:`PricingError` saying what is wrong."""
    try:
        data = json.loads(Path(path).read_text("utf-8"))
    except OSError as exc:
        raise PricingError(f"pricing file {path}: cannot read it: {exc.strerror or exc}") from None
    except ValueError as exc:
        raise PricingError(f"pricing file {path}: not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise PricingError(f"pricing file {path}: expected a JSON object with 'models' and 'aliases'")
    models = data.get("models", {})
    aliases = data.get("aliases", {})
    if not isinstance(models, dict) or not isinstance(aliases, dict):
        raise PricingError(f"pricing file {path}: 'models' and 'aliases' must be JSON objects")
    for name, entry in models.items():
        if not isinstance(entry, dict) or "input" not in entry or "output" not in entry:
            raise PricingError(f"pricing file {path}: model {name!r} needs 'input' and 'output' prices")
        for key in _PRICE_KEYS:
            value = entry.get(key, 0)
            if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value < float("inf"):
                raise PricingError(
                    f"pricing file {path}: model {name!r} {key} must be a number >= 0 (USD per 1M tokens)"
                )
    for alias, target in aliases.items():
        if not isinstance(target, str):
            raise PricingError(f"pricing file {path}: alias {alias!r} must name a model (a string)")
    return data


class PricingSource:
    """The pricing table in force: shipped, plus the override file, reloaded when it changes.

    :meth:`current` checks the file's modification time at most every ``check_interval``
    seconds. A file that cannot be used is logged in one line and the previous table stays in
    force; a file that disappears leaves the shipped table.
    """

    def __init__(
        self,
        override_file: str | Path | None = None,
        *,
        check_interval: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.path = Path(override_file) if override_file else None
        self.check_interval = check_interval
        self._clock = clock
        self._shipped = PricingTable.shipped()
        self._stamp: tuple[int, int] | None = None
        self._next_check = 0.0
        self._table = PricingTable(self._shipped)
        self.error: str | None = None
        """The last override file's problem, None when it is in force (or there is none)."""
        self._reload()

    def current(self) -> PricingTable:
        """The table in force now."""
        if self.path is not None and self._clock() >= self._next_check:
            self._reload()
        return self._table

    def _reload(self) -> None:
        if self.path is None:
            return
        self._next_check = self._clock() + self.check_interval
        try:
            stat = os.stat(self.path)
        except OSError:
            if self._stamp is not None:
                _log.warning("event=pricing_override_removed path=%s table=shipped", self.path)
                self._table = PricingTable(self._shipped)
            elif self.error is None:
                self.error = f"pricing file {self.path}: not found"
                _log.warning("event=pricing_override_rejected error=%r", self.error)
            self._stamp = None
            return
        stamp = (stat.st_mtime_ns, stat.st_size)
        if stamp == self._stamp:
            return
        self._stamp = stamp
        try:
            table = PricingTable(self._shipped, override=read_override(self.path))
        except (PricingError, KeyError, TypeError, ValueError) as exc:
            self.error = str(exc)
            _log.warning("event=pricing_override_rejected error=%r kept=%s", self.error, self._table.version)
            return
        self.error = None
        self._table = table
        _log.info("event=pricing_loaded path=%s version=%s", self.path, table.version)
