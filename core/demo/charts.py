"""The demo report's control charts: every chart's EWMA with its baseline, limits and threshold.

:func:`chart_section` finds every SPC chart that fixed a baseline during the run (the quality
engine's per feature and statistic, the drift engine's prompt similarity per feature) and draws
each over the whole run with the incidents shaded; :func:`chart_lines` gives the baseline, control
limits and alert threshold of a charted series, for the incident plots too.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

from llmpulse.demo.sources import Prometheus

logger = logging.getLogger(__name__)

__all__ = ["chart_lines", "chart_section"]

Line = tuple[str | None, str, str, list[tuple[float, float]]]

# For a charted series: the chart's other lines (metric, legend, colour, style); ``{sel}`` is
# the EWMA's selector. The SPC threshold is the limit moved out to the minimum effect.
_CHART_LINES = {
    "llmpulse_spc_ewma": (
        ("llmpulse_spc_centre", "baseline", "#2ca02c", "-"),
        ("llmpulse_spc_upper", "control limits", "#7f7f7f", ":"),
        ("llmpulse_spc_lower", None, "#7f7f7f", ":"),
        ("llmpulse_spc_alert_threshold", "alert threshold", "#d62728", "-."),
    ),
    "llmpulse_drift_similarity_ewma": (
        ("llmpulse_drift_similarity_centre", "baseline", "#2ca02c", "-"),
        ("llmpulse_drift_similarity_lower_limit", "control limit = alert threshold", "#d62728", "-."),
    ),
}


def chart_lines(prometheus: Prometheus, expr: str, start: float, end: float, step: float) -> list[Line]:
    """The baseline, limits and threshold of the chart whose EWMA ``expr`` is, if it is one."""
    for ewma, others in _CHART_LINES.items():
        if expr.startswith(ewma + "{"):
            selector = expr[len(ewma) :]
            return [
                (legend, colour, style, prometheus.query_range(metric + selector, start, end, step))
                for metric, legend, colour, style in others
            ]
    return []


def _charts(prometheus: Prometheus, lookback_s: float) -> list[tuple[str, str, str]]:
    """(title, EWMA expression, file stem) of every control chart that had a baseline."""
    lookback = f"{max(1, int(lookback_s))}s"
    found = []
    query = f"count by (feature, statistic) (count_over_time(llmpulse_spc_centre[{lookback}]))"
    for sample in prometheus.query(query):
        feature, statistic = sample["metric"].get("feature"), sample["metric"].get("statistic")
        if feature and statistic:
            expr = f'llmpulse_spc_ewma{{feature="{feature}",statistic="{statistic}"}}'
            found.append((f"{feature}: {statistic}", expr, f"chart-{feature}-{statistic}"))
    query = f"count by (feature) (count_over_time(llmpulse_drift_similarity_centre[{lookback}]))"
    for sample in prometheus.query(query):
        feature = sample["metric"].get("feature")
        if feature:
            expr = f'llmpulse_drift_similarity_ewma{{feature="{feature}"}}'
            found.append((f"{feature}: prompt similarity (drift)", expr, f"chart-{feature}-similarity"))
    return sorted(found)


def _plot_chart(
    prometheus: Prometheus,
    chart: tuple[str, str],
    path: Path,
    *,
    window: tuple[float, float],
    speed: float,
    spans: Sequence[tuple[float, float]],
) -> bool:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    title, expr = chart
    start, end = window
    step = max(0.5, (end - start) / 400)
    points = prometheus.query_range(expr, start, end, step)
    if not points:
        return False

    def sim_min(t: float) -> float:
        return (t - start) * speed / 60

    figure, axes = plt.subplots(figsize=(7, 2.4), dpi=100)
    axes.plot([sim_min(t) for t, _ in points], [v for _, v in points], color="#1f77b4", label="EWMA")
    for legend, colour, style, line in chart_lines(prometheus, expr, start, end, step):
        if line:
            xs, ys = [sim_min(t) for t, _ in line], [v for _, v in line]
            axes.plot(xs, ys, color=colour, linestyle=style, linewidth=1, label=legend)
    for begin, finish in spans:
        axes.axvspan(sim_min(begin), sim_min(finish), color="#ff7f0e", alpha=0.10)
    axes.set_title(f"{title} (incidents shaded)", fontsize=10)
    axes.set_xlabel("simulated minutes since the demo started")
    axes.legend(fontsize=7, loc="best")
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)
    return True


def chart_section(
    prometheus: Prometheus,
    out_dir: Path,
    *,
    started_at: float,
    speed: float,
    spans: Sequence[tuple[float, float]],
) -> list[str]:
    """The report's Markdown lines for the control charts; writes one PNG per chart to ``out_dir``."""
    lines = [
        "## Control charts",
        "",
        "Each chart's EWMA over the run with its baseline (the warm-up mean), its control limits"
        " (widened for the estimated baseline) and the alert threshold (the limit, or the minimum"
        " effect where that is farther). Charts alarm on one side: the judge score and the"
        " prompt similarity when they fall, the others when they rise.",
        "",
    ]
    end = max([finish for _, finish in spans] + [started_at + 1.0]) + 60.0
    try:
        charts = _charts(prometheus, end - started_at)
    except Exception:  # a plot is a nice-to-have; the table is the result
        logger.warning("event=demo_charts_failed", exc_info=True)
        charts = []
    for title, expr, stem in charts:
        image = out_dir / f"{stem}.png"
        try:
            drawn = _plot_chart(
                prometheus, (title, expr), image, window=(started_at, end), speed=speed, spans=spans
            )
        except Exception:
            logger.warning("event=demo_plot_failed image=%s", image, exc_info=True)
            drawn = False
        if drawn:
            lines.extend([f"### {title}", "", f"![{stem}]({image.name})", ""])
    if not charts:
        lines.append("_(no chart fixed a baseline in this run)_")
    return lines
