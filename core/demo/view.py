"""The demo's live view: per-feature traffic, errors, p95, spend, quality, drift, alerts, progress.

:class:`SnapshotReader` gathers one :class:`Snapshot` from the processor's ``/api/status`` (error
rate and p95 of the last minute, as ``llmpulse status`` shows them) and Prometheus (calls/s and
USD/h from the recording rules, the quality engine's judge-score EWMA and the drift engine's
input drift score when those series exist, the alerts firing). :class:`LiveView` draws it with
rich on a terminal; :class:`PlainView` prints one line per feature when stdout is not a TTY.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Protocol, TextIO

from llmpulse.demo.scenario import FEATURES, Schedule
from llmpulse.demo.sources import Prometheus, fetch_json

__all__ = ["FeatureRow", "LiveView", "PlainView", "Snapshot", "SnapshotReader", "View", "make_view"]

DASH = "—"


@dataclass(frozen=True)
class FeatureRow:
    """What the view shows for one feature; ``None`` means no data (yet)."""

    calls_per_s: float | None = None
    error_rate: float | None = None
    p95_s: float | None = None
    usd_per_hour: float | None = None
    quality_ewma: float | None = None
    drift_score: float | None = None


@dataclass(frozen=True)
class Snapshot:
    """The state of the demo at one moment."""

    elapsed_s: float
    total_s: float
    speed: float
    active: tuple[str, ...]
    upcoming: str | None
    features: dict[str, FeatureRow] = field(default_factory=dict)
    firing: tuple[str, ...] = ()

    @property
    def sim_clock(self) -> str:
        minutes = self.elapsed_s * self.speed / 60
        return f"{int(minutes // 60)}h{int(minutes % 60):02d}"


class SnapshotReader:
    """Reads a :class:`Snapshot` from the running stack."""

    def __init__(self, prometheus: Prometheus, processor_url: str, schedule: Schedule) -> None:
        self._prometheus = prometheus
        self._status_url = processor_url.rstrip("/") + "/api/status"
        self._schedule = schedule

    def read(self, elapsed_s: float) -> Snapshot:
        prom = self._prometheus
        calls = prom.values_by("sum by (feature) (feature_model:llmpulse_requests:rate5m)", "feature")
        cost = prom.values_by("feature:llmpulse_cost_usd_per_hour:rate5m", "feature")
        quality = prom.values_by('avg by (feature) (llmpulse_spc_ewma{statistic="judge_score"})', "feature")
        drift = prom.values_by('max by (feature) (llmpulse_drift_score{signal="input"})', "feature")
        status = fetch_json(self._status_url, timeout=2.0)
        services: dict[str, Any] = status.get("services", {}) if isinstance(status, dict) else {}
        windows: dict[str, Any] = {}
        for features in services.values():  # the demo app is one service
            for name, feature_windows in features.items():
                windows.setdefault(name, feature_windows)
        rows = {}
        for feature in FEATURES:
            recent = windows.get(feature.name, {}).get("1m", {})
            rows[feature.name] = FeatureRow(
                calls_per_s=calls.get(feature.name),
                error_rate=recent.get("error_rate"),
                p95_s=recent.get("latency_p95_s"),
                usd_per_hour=cost.get(feature.name),
                quality_ewma=quality.get(feature.name),
                drift_score=drift.get(feature.name),
            )
        firing = tuple(
            sorted(
                f"{a.get('alertname')}{{{a['feature']}}}" if "feature" in a else str(a.get("alertname"))
                for a in prom.firing()
            )
        )
        minute = elapsed_s * self._schedule.speed / 60
        upcoming = next((i.title for i in self._schedule.incidents if i.start_min > minute), None)
        return Snapshot(
            elapsed_s,
            self._schedule.duration_s,
            self._schedule.speed,
            tuple(i.title for i in self._schedule.active(elapsed_s)),
            upcoming,
            rows,
            firing,
        )


def _fmt(value: float | None, kind: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return DASH
    if kind == "pct":
        return f"{100 * value:.1f}%"
    if kind == "s":
        return f"{value * 1000:.0f}ms" if value < 1 else f"{value:.2f}s"
    if kind == "usd":
        return f"${value:.2f}"
    return f"{value:.2f}"


COLUMNS = ("feature", "calls/s", "errors", "p95", "USD/h", "quality EWMA", "drift")


def _cells(name: str, row: FeatureRow) -> tuple[str, ...]:
    return (
        name,
        _fmt(row.calls_per_s, "num"),
        _fmt(row.error_rate, "pct"),
        _fmt(row.p95_s, "s"),
        _fmt(row.usd_per_hour, "usd"),
        _fmt(row.quality_ewma, "num"),
        _fmt(row.drift_score, "num"),
    )


class View(Protocol):
    """Something that shows snapshots; a context manager around the run."""

    def __enter__(self) -> View: ...

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None: ...

    def update(self, snapshot: Snapshot) -> None: ...

    def say(self, line: str) -> None: ...


class PlainView:
    """Plain lines for logs and pipes: a header line, one line per feature, the alerts."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream

    def __enter__(self) -> PlainView:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stream.flush()

    def say(self, line: str) -> None:
        print(line, file=self._stream, flush=True)

    def update(self, s: Snapshot) -> None:
        pct = 100 * min(1.0, s.elapsed_s / s.total_s) if s.total_s else 100.0
        active = ", ".join(s.active) or "none"
        self.say(f"[{pct:3.0f}%] t={s.elapsed_s:5.0f}s sim {s.sim_clock}  incident: {active}")
        for name, row in s.features.items():
            cells = _cells(name, row)
            self.say(
                "   "
                + "  ".join(f"{c}={v}" for c, v in zip(COLUMNS[1:], cells[1:], strict=True))
                + f"  {name}"
            )
        self.say("   firing: " + (", ".join(s.firing) or "none"))


class LiveView:
    """A rich Live panel redrawn in place on a terminal."""

    def __init__(self, stream: TextIO) -> None:
        from rich.console import Console

        self._console = Console(file=stream)
        self._live: Any = None

    def __enter__(self) -> LiveView:
        from rich.live import Live

        self._live = Live(console=self._console, refresh_per_second=2, transient=False)
        self._live.__enter__()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._live is not None:
            self._live.__exit__(exc_type, exc, tb)

    def say(self, line: str) -> None:
        self._console.print(line, highlight=False, markup=False)

    def update(self, s: Snapshot) -> None:
        from rich.console import Group
        from rich.progress_bar import ProgressBar
        from rich.table import Table
        from rich.text import Text

        table = Table(title=f"llmpulse demo · speed {s.speed:g} · simulated {s.sim_clock}", expand=False)
        for column in COLUMNS:
            table.add_column(column, justify="left" if column == "feature" else "right")
        for name, row in s.features.items():
            table.add_row(*_cells(name, row))
        bar = ProgressBar(total=max(s.total_s, 1.0), completed=min(s.elapsed_s, s.total_s), width=50)
        status = Text()
        status.append("incident: ", style="bold")
        status.append(", ".join(s.active) or "none", style="yellow" if s.active else "green")
        if s.upcoming:
            status.append(f"   next: {s.upcoming}", style="dim")
        alerts = Text("firing: ", style="bold")
        alerts.append(", ".join(s.firing) or "none", style="red" if s.firing else "green")
        progress = Table.grid(padding=(0, 1))
        progress.add_row(bar, Text(f"{s.elapsed_s:.0f}/{s.total_s:.0f} s"))
        if self._live is not None:
            self._live.update(Group(table, progress, status, alerts))


def make_view(stream: TextIO) -> View:
    """:class:`LiveView` on a terminal, :class:`PlainView` otherwise."""
    return LiveView(stream) if stream.isatty() else PlainView(stream)
