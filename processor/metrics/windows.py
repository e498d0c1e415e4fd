"""Rolling in-memory windows per (service, feature): the status view that needs no Prometheus.

Each window (1 min, 5 min, 1 h) is a ring of 60 slots (1 s, 5 s and 60 s wide). A slot holds
sums (requests, errors, refusals, cost, tokens) and the latencies of its calls, up to
``latency_samples_per_slot``; past that it keeps a uniform reservoir sample. Percentiles are
therefore exact while a feature's rate stays under ``latency_samples_per_slot`` calls per slot
(1,000/s for 1 min, 200/s for 5 min, ~16/s for 1 h with the default) and the snapshot says so
with ``latency_exact``. Memory is bounded per feature; features are the capped label values.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np

from llmpulse.processor.pipeline.records import LLMCall

WINDOWS: tuple[tuple[str, float], ...] = (("1m", 1.0), ("5m", 5.0), ("1h", 60.0))
"""(name, slot width in seconds); every window has :data:`SLOTS` slots."""
SLOTS = 60


class FeatureBatch:
    """What one batch contributed to one feature; built on the hot path, merged once per batch."""

    __slots__ = (
        "cost",
        "count",
        "errors",
        "in_n",
        "in_sum",
        "latencies",
        "out_n",
        "out_sum",
        "priced",
        "refusals",
        "unpriced",
    )

    def __init__(self) -> None:
        self.count = self.errors = self.refusals = self.priced = self.unpriced = 0
        self.in_n = self.in_sum = self.out_n = self.out_sum = 0
        self.cost = 0.0
        self.latencies: list[float] = []

    def add(self, call: LLMCall) -> None:
        """Add one LLM call."""
        self.count += 1
        if call.error_type:
            self.errors += 1
        elif call.outcome == "refusal":
            self.refusals += 1
        if call.cost_usd is not None:
            self.priced += 1
            self.cost += call.cost_usd
        elif not call.error_type:
            self.unpriced += 1
        if call.input_tokens is not None:
            self.in_n += 1
            self.in_sum += call.input_tokens
        if call.output_tokens is not None:
            self.out_n += 1
            self.out_sum += call.output_tokens
        self.latencies.append(call.duration_s)


class _Slot:
    __slots__ = ("cost", "count", "errors", "filled", "ident", "in_n", "in_sum", "lat", "out_n", "out_sum",
                 "priced", "refusals", "seen", "unpriced")  # fmt: skip

    def __init__(self) -> None:
        self.ident = -1
        self.lat: np.ndarray[Any, np.dtype[np.float64]] | None = None
        self.reset(-1)

    def reset(self, ident: int) -> None:
        self.ident = ident
        self.count = self.errors = self.refusals = self.priced = self.unpriced = 0
        self.in_n = self.in_sum = self.out_n = self.out_sum = 0
        self.cost = 0.0
        self.filled = self.seen = 0


class _Ring:
    def __init__(self, width: float, cap: int, rng: np.random.Generator) -> None:
        self.width = width
        self.cap = cap
        self.rng = rng
        self.slots = [_Slot() for _ in range(SLOTS)]

    def add(self, now: float, batch: FeatureBatch) -> None:
        ident = int(now // self.width)
        slot = self.slots[ident % SLOTS]
        if slot.ident != ident:
            slot.reset(ident)
        slot.count += batch.count
        slot.errors += batch.errors
        slot.refusals += batch.refusals
        slot.priced += batch.priced
        slot.unpriced += batch.unpriced
        slot.cost += batch.cost
        slot.in_n += batch.in_n
        slot.in_sum += batch.in_sum
        slot.out_n += batch.out_n
        slot.out_sum += batch.out_sum
        self._sample(slot, batch.latencies)

    def _sample(self, slot: _Slot, latencies: list[float]) -> None:
        if not latencies:
            return
        if slot.lat is None:
            slot.lat = np.empty(self.cap)
        values = np.asarray(latencies, dtype=np.float64)
        room = self.cap - slot.filled
        if room > 0:
            take = values[:room]
            slot.lat[slot.filled : slot.filled + len(take)] = take
            slot.filled += len(take)
            slot.seen += len(take)
            values = values[room:]
        if len(values):  # reservoir sampling (algorithm R), vectorised
            positions = self.rng.integers(0, slot.seen + np.arange(1, len(values) + 1))
            keep = positions < self.cap
            slot.lat[positions[keep]] = values[keep]
            slot.seen += len(values)

    def snapshot(self, now: float) -> dict[str, Any]:
        current = int(now // self.width)
        live = [s for s in self.slots if 0 <= current - s.ident < SLOTS]
        count = sum(s.count for s in live)
        priced = sum(s.priced for s in live)
        unpriced = sum(s.unpriced for s in live)
        errors = sum(s.errors for s in live)
        cost = sum(s.cost for s in live)
        in_n, out_n = sum(s.in_n for s in live), sum(s.out_n for s in live)
        samples = [s.lat[: s.filled] for s in live if s.lat is not None and s.filled]
        exact = all(s.seen == s.filled for s in live)
        p50 = p95 = p99 = None
        if samples:
            p50, p95, p99 = (float(x) for x in np.percentile(np.concatenate(samples), [50, 95, 99]))
        return {
            "requests": count,
            "error_rate": errors / count if count else None,
            "refusal_rate": sum(s.refusals for s in live) / count if count else None,
            "latency_p50_s": p50,
            "latency_p95_s": p95,
            "latency_p99_s": p99,
            "latency_exact": exact,
            "cost_usd_total": cost,
            "cost_usd_mean": cost / priced if priced else None,
            "unpriced": unpriced,
            "unpriced_share": unpriced / (count - errors) if count > errors else None,
            "input_tokens_mean": sum(s.in_sum for s in live) / in_n if in_n else None,
            "output_tokens_mean": sum(s.out_sum for s in live) / out_n if out_n else None,
        }


class RollingWindows:
    """Per-(service, feature) 1 min / 5 min / 1 h windows."""

    def __init__(
        self,
        *,
        latency_samples_per_slot: int = 1000,
        clock: Callable[[], float] = time.time,
        seed: int = 0,
    ) -> None:
        self._cap = latency_samples_per_slot
        self._clock = clock
        self._rng = np.random.default_rng(seed)
        self._features: dict[tuple[str, str], list[_Ring]] = {}

    def add(self, batches: dict[tuple[str, str], FeatureBatch]) -> None:
        """Merge one processed batch ((service, feature) -> contribution)."""
        now = self._clock()
        for key, batch in batches.items():
            rings = self._features.get(key)
            if rings is None:
                rings = self._features[key] = [_Ring(width, self._cap, self._rng) for _, width in WINDOWS]
            for ring in rings:
                ring.add(now, batch)

    def snapshot(self) -> dict[str, dict[str, dict[str, dict[str, Any]]]]:
        """``{service: {feature: {"1m": {...}, "5m": {...}, "1h": {...}}}}`` for every one seen."""
        now = self._clock()
        out: dict[str, dict[str, dict[str, dict[str, Any]]]] = {}
        for (service, feature), rings in sorted(self._features.items()):
            out.setdefault(service, {})[feature] = {
                name: ring.snapshot(now) for (name, _), ring in zip(WINDOWS, rings, strict=True)
            }
        return out
