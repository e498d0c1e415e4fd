"""The demo's verdict: which incident raised which alert, how fast, and what fired for nothing.

:func:`attribute` matches the alerts that reached the webhook with the incident schedule; the
result is printed as a table, written as ``report.md`` (with one PNG per incident: the key
series around it, the incident shaded, the webhook arrival marked; and one PNG per control
chart over the whole run: its EWMA, baseline, control limits and alert threshold) and as
``report.json``. Every alert that fired is listed: each incident's first detection, the other
alerts credited to it (its side effects too), and the false alarms.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llmpulse.demo.charts import chart_lines, chart_section
from llmpulse.demo.scenario import Incident, Schedule
from llmpulse.demo.sources import FiredAlert, Prometheus

logger = logging.getLogger(__name__)

__all__ = ["DemoResult", "IncidentResult", "attribute", "render_table", "write_report"]

DETECTED, MISSED, NO_RULE = "detected", "missed", "no alert rule yet"
NO_ENGINE = "engine not running"  # the rule exists, its input series do not


@dataclass(frozen=True)
class IncidentResult:
    """One incident's outcome. ``alert`` is the first matching alert at the webhook."""

    incident: Incident
    started_at: float  # unix seconds
    ended_at: float
    status: str
    expected: str | None  # the alert (defined in the rule files) that should report it
    alert: FiredAlert | None
    credited: tuple[FiredAlert, ...] = ()
    """Every alert credited to the incident (its detections and side effects), by arrival."""

    @property
    def delay_s(self) -> float | None:
        return None if self.alert is None else self.alert.webhook_at - self.started_at


@dataclass(frozen=True)
class DemoResult:
    """Everything the report says, JSON-ready through :meth:`to_json`."""

    speed: float
    started_at: float
    incidents: tuple[IncidentResult, ...]
    false_alarms: tuple[FiredAlert, ...]

    @property
    def ok(self) -> bool:
        """Every incident with an alert rule detected, and nothing else fired."""
        return not self.false_alarms and all(r.status != MISSED for r in self.incidents)

    def to_json(self) -> dict[str, Any]:
        return {
            "speed": self.speed,
            "started_at": self.started_at,
            "ok": self.ok,
            "incidents": [
                {
                    "key": r.incident.key,
                    "title": r.incident.title,
                    "feature": r.incident.feature,
                    "started_at": r.started_at,
                    "status": r.status,
                    "expected_alert": r.expected,
                    "alert": r.alert.describe() if r.alert else None,
                    "fired_at": r.alert.fired_at if r.alert else None,
                    "console_url": r.alert.console_link() if r.alert else None,
                    "webhook_at": r.alert.webhook_at if r.alert else None,
                    "delay_s": r.delay_s,
                    "credited": [
                        {"alert": a.describe(), "fired_at": a.fired_at, "webhook_at": a.webhook_at}
                        for a in r.credited
                    ],
                }
                for r in self.incidents
            ],
            "false_alarms": [
                {"alert": a.describe(), "fired_at": a.fired_at, "webhook_at": a.webhook_at}
                for a in self.false_alarms
            ],
        }


def _detects(alert: FiredAlert, incident: Incident, names: Iterable[str]) -> bool:
    # agent and tool alerts carry no feature: their agent or tool label (extra_labels) says whose
    feature = alert.label("feature")
    if alert.name not in set(names) or (feature is not None and feature != incident.feature):
        return False
    return all(
        alert.label(k) in ((v,) if isinstance(v, str) else v) for k, v in incident.extra_labels.items()
    )


def _side_effect(alert: FiredAlert, incident: Incident) -> bool:
    return alert.name in incident.side_effects and alert.label("feature") == incident.feature


def attribute(
    schedule: Schedule,
    started_at: float,
    alerts: Iterable[FiredAlert],
    defined: Iterable[str],
    has_data: Callable[[str], bool] | None = None,
) -> DemoResult:
    """Credit each alert to the incident it reports; the rest are false alarms.

    An alert is credited when its name is one of the incident's alerts (or side effects), its
    ``feature`` (when it has one) and e.g. ``step`` or ``tool`` labels are the incident's, and it
    reached the webhook between
    the incident's start and the next incident's start. ``has_data(expr)`` says whether an
    incident's ``requires`` query returns data (default: assume it does).
    """
    defined_names = set(defined)
    remaining = sorted(alerts, key=lambda a: a.webhook_at)
    results = []
    for incident in schedule.incidents:
        begin, until = schedule.window(incident)
        start = started_at + begin
        end = started_at + schedule.seconds(incident.end_min)
        expected = [name for name in incident.alerts if name in defined_names]
        if not expected:
            results.append(IncidentResult(incident, start, end, NO_RULE, None, None))
            continue
        in_window = [a for a in remaining if start <= a.webhook_at < started_at + until]
        credited = [a for a in in_window if _detects(a, incident, expected)]
        side = [a for a in in_window if _side_effect(a, incident)]
        remaining = [a for a in remaining if a not in credited and a not in side]
        first = credited[0] if credited else None
        status = DETECTED if first else MISSED
        if first is None and incident.requires and has_data is not None and not has_data(incident.requires):
            status = NO_ENGINE
        both = tuple(sorted(credited + side, key=lambda a: a.webhook_at))
        results.append(IncidentResult(incident, start, end, status, expected[0], first, both))
    return DemoResult(schedule.speed, started_at, tuple(results), tuple(remaining))


def _clock(seconds: float) -> str:
    return f"{int(seconds // 60):d}:{int(seconds % 60):02d}"


def _sim(seconds: float, speed: float) -> str:
    minutes = seconds * speed / 60
    return f"{int(minutes // 60):d}h{int(minutes % 60):02d}"


def table_rows(result: DemoResult) -> list[list[str]]:
    """Header and one row per incident (times relative to the start: real m:ss and simulated)."""
    rows = [
        ["incident", "feature", "started", "alert", "fired", "at webhook", "delay", "simulated delay"],
    ]
    for r in result.incidents:
        t0 = r.started_at - result.started_at
        started = f"{_clock(t0)} ({_sim(t0, result.speed)})"
        if r.alert is None:
            alert = f"MISSED ({r.expected})" if r.status == MISSED else f"{r.status} ({r.expected or '-'})"
            if r.status == NO_RULE:
                alert = NO_RULE
            rows.append([r.incident.title, r.incident.feature, started, alert, "-", "-", "-", "-"])
            continue
        delay = r.delay_s or 0.0
        rows.append(
            [
                r.incident.title,
                r.incident.feature,
                started,
                r.alert.name,
                _clock(r.alert.fired_at - result.started_at),
                _clock(r.alert.webhook_at - result.started_at),
                f"{delay:.1f} s",
                f"{delay * result.speed / 60:.0f} min",
            ]
        )
    return rows


def render_table(result: DemoResult) -> str:
    """The table as fixed-width text, false alarms listed below it."""
    rows = table_rows(result)
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip() for row in rows]
    lines.append("")
    lines.extend(_credited_lines(result))
    if result.false_alarms:
        lines.append("false alarms (fired with no incident):")
        for alert in result.false_alarms:
            lines.append(f"  {alert.describe()} at {_clock(alert.webhook_at - result.started_at)}")
    else:
        lines.append("false alarms: none")
    return "\n".join(lines)


def _credited_lines(result: DemoResult) -> list[str]:
    lines = []
    for r in result.incidents:
        others = [a for a in r.credited if a is not r.alert]
        if others:
            shown = ", ".join(f"{a.describe()} at {_clock(a.webhook_at - result.started_at)}" for a in others)
            lines.append(f"also credited to {r.incident.title}: {shown}")
    return lines


def _plot(prometheus: Prometheus, result: DemoResult, r: IncidentResult, window: str, path: Path) -> bool:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    span = r.ended_at - r.started_at
    start, end = r.started_at - max(span, 10.0), r.ended_at + max(span, 10.0)
    step = max(0.5, (end - start) / 300)
    points: list[tuple[float, float]] = []
    labels = r.incident.series_label.split("|")
    label = labels[0]
    for index, template in enumerate(r.incident.series):
        points = prometheus.query_range(
            template.format(feature=r.incident.feature, w=window), start, end, step
        )
        if points:
            label = labels[min(index, len(labels) - 1)]
            break
    if not points:
        return False

    def sim_min(t: float) -> float:
        return (t - result.started_at) * result.speed / 60

    figure, axes = plt.subplots(figsize=(7, 2.6), dpi=100)
    axes.plot([sim_min(t) for t, _ in points], [v for _, v in points], color="#1f77b4")
    expr = r.incident.series[index].format(feature=r.incident.feature, w=window)
    for legend, colour, style, line in chart_lines(prometheus, expr, start, end, step):
        if line:
            xs, ys = [sim_min(t) for t, _ in line], [v for _, v in line]
            axes.plot(xs, ys, color=colour, linestyle=style, linewidth=1, label=legend)
    axes.axvspan(sim_min(r.started_at), sim_min(r.ended_at), color="#ff7f0e", alpha=0.15, label="incident")
    if r.alert is not None:
        axes.axvline(sim_min(r.alert.webhook_at), color="#d62728", linestyle="--", label=r.alert.name)
    axes.set_title(f"{r.incident.title} ({r.incident.feature})", fontsize=10)
    axes.set_xlabel("simulated minutes since the demo started")
    axes.set_ylabel(label, fontsize=8)
    axes.legend(fontsize=7, loc="upper left")
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)
    return True


def write_report(result: DemoResult, out_dir: Path, prometheus: Prometheus, window: str) -> Path:
    """``report.md`` (table, plots, notes) and ``report.json`` in ``out_dir``; returns the .md path."""
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "report.json").write_text(json.dumps(result.to_json(), indent=2))
    rows = table_rows(result)
    lines = [
        "# llmpulse demo: incidents and alerts",
        "",
        f"Speed {result.speed:g}: one real second plays {result.speed:g} seconds of traffic; rule "
        "windows, offsets and `for:` were divided by the same factor (see docs/demo.md).",
        "",
        "| " + " | ".join(rows[0]) + " |",
        "|" + "---|" * len(rows[0]),
        *("| " + " | ".join(row) + " |" for row in rows[1:]),
        "",
    ]
    lines.append("**Every alert that fired:**")
    lines.append("")
    for r in result.incidents:
        for a in r.credited:
            role = "detection" if a is r.alert else "also credited"
            when = _clock(a.webhook_at - result.started_at)
            lines.append(f"- `{a.describe()}` at the webhook {when}: {role} ({r.incident.title})")
    lines.extend(
        f"- `{a.describe()}` at the webhook {_clock(a.webhook_at - result.started_at)}: **false alarm**"
        for a in result.false_alarms
    )
    lines.append("")
    lines.append("**False alarms:** none." if not result.false_alarms else "")
    lines.append("")
    for r in result.incidents:
        lines.append(f"## {r.incident.title}")
        lines.append("")
        lines.append(
            f"{r.incident.injected} (feature `{r.incident.feature}`, injected in the {r.incident.where})."
        )
        if r.status == NO_RULE:
            lines.append(f"No alert rule yet: expected one of {', '.join(r.incident.alerts)}.")
        elif r.status == NO_ENGINE:
            lines.append(
                f"{r.expected} is defined, but `{r.incident.requires}` had no data: its engine did not run."
            )
        link = r.alert.console_link() if r.alert else None
        if link:
            lines.append("")
            lines.append(
                f"Console: [{r.alert.name if r.alert else ''} incident page]({link}) (flagged samples,"
                " scope, what changed; live while the stack runs, e.g. with `--keep-stack`)."
            )
        image = out_dir / f"incident-{r.incident.key}.png"
        try:
            drawn = _plot(prometheus, result, r, window, image)
        except Exception:  # a plot is a nice-to-have; the table is the result
            logger.warning("event=demo_plot_failed image=%s", image, exc_info=True)
            drawn = False
        lines.append("")
        lines.append(f"![{r.incident.key}]({image.name})" if drawn else "_(no data to plot)_")
        lines.append("")
    spans = [(r.started_at, r.ended_at) for r in result.incidents]
    lines.extend(
        chart_section(prometheus, out_dir, started_at=result.started_at, speed=result.speed, spans=spans)
    )
    path = out_dir / "report.md"
    path.write_text("\n".join(lines))
    return path
