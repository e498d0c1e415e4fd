"""A line chart as inline SVG, drawn on the server: no script runs in the browser.

Lines share one y axis; a vertical marker shows the alert's start. Every text in the SVG is
escaped, so a label value from an alert cannot inject markup.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from html import escape

__all__ = ["STYLES", "line_chart"]

# line name -> (stroke colour, dash pattern, legend text)
STYLES: dict[str, tuple[str, str, str]] = {
    "value": ("#9aa5b1", "", "per-window value"),
    "ewma": ("#1f6feb", "", "EWMA"),
    "centre": ("#2da44e", "6 4", "baseline (centre line)"),
    "lower": ("#cf222e", "3 3", "lower control limit"),
    "upper": ("#cf222e", "3 3", "upper control limit"),
}


def _fmt_time(t: float, *, seconds: bool = False) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%H:%M:%S" if seconds else "%H:%M")


def line_chart(
    lines: Mapping[str, Sequence[tuple[float, float]]],
    *,
    start: float,
    end: float,
    marker: float | None = None,
    marker_text: str = "alert start",
    width: int = 760,
    height: int = 260,
    title: str = "",
) -> str:
    """The SVG text of a chart of ``lines`` (name -> (unix time, value) points) from ``start`` to ``end``."""
    left, right, top, bottom = 56, 12, 40, 30
    first = min((points[0][0] for points in lines.values() if points), default=start)
    start = max(start, first)  # a young series fills the width instead of a sliver of it
    if marker is not None and marker < start:
        start = marker
    plot_w, plot_h = width - left - right, height - top - bottom
    values = [v for points in lines.values() for _, v in points]
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" width="{width}" height="{height}"'
        f' viewBox="0 0 {width} {height}" role="img" aria-label="{escape(title)}">',
        f'<text x="{left}" y="16" class="chart-title">{escape(title)}</text>',
        f'<rect x="{left}" y="{top}" width="{plot_w}" height="{plot_h}" fill="none" stroke="#d0d7de"/>',
    ]
    if not values or end <= start:
        parts.append(
            f'<text x="{left + plot_w / 2}" y="{top + plot_h / 2}" text-anchor="middle">'
            "no data in Prometheus</text>"
        )
        parts.append("</svg>")
        return "".join(parts)
    lo, hi = min(values), max(values)
    if hi == lo:
        lo, hi = lo - 1.0, hi + 1.0
    pad = (hi - lo) * 0.08
    lo, hi = lo - pad, hi + pad

    def x(t: float) -> float:
        return left + (t - start) / (end - start) * plot_w

    def y(v: float) -> float:
        return top + (hi - v) / (hi - lo) * plot_h

    for i in range(5):
        v = lo + (hi - lo) * i / 4
        parts.append(
            f'<line x1="{left}" x2="{left + plot_w}" y1="{y(v):.1f}" y2="{y(v):.1f}" stroke="#eaeef2"/>'
            f'<text x="{left - 6}" y="{y(v) + 4:.1f}" text-anchor="end" class="tick">{v:.3g}</text>'
        )
    for i in range(5):
        t = start + (end - start) * i / 4
        parts.append(
            f'<text x="{x(t):.1f}" y="{height - 10}" text-anchor="middle" class="tick">'
            f"{_fmt_time(t, seconds=end - start < 600)}</text>"
        )
    for name, points in lines.items():
        if not points:
            continue
        colour, dash, _ = STYLES.get(name, ("#57606a", "", name))
        path = " ".join(f"{'M' if i == 0 else 'L'}{x(t):.1f},{y(v):.1f}" for i, (t, v) in enumerate(points))
        dashed = f' stroke-dasharray="{dash}"' if dash else ""
        parts.append(
            f'<path d="{path}" fill="none" stroke="{colour}" stroke-width="1.8"{dashed}'
            f' data-line="{escape(name)}"/>'
        )
    if marker is not None and start <= marker <= end:
        mx = x(marker)
        parts.append(
            f'<line x1="{mx:.1f}" x2="{mx:.1f}" y1="{top}" y2="{top + plot_h}" stroke="#bf8700"'
            f' stroke-width="2" class="alert-start"/>'
            f'<text x="{mx + 4:.1f}" y="{top + 12}" class="marker">'
            f"{escape(marker_text)} {_fmt_time(marker, seconds=True)}</text>"
        )
    legend_x = left + plot_w
    for name in reversed([n for n in lines if lines[n]]):
        colour, _, text = STYLES.get(name, ("#57606a", "", name))
        label = escape(text)
        legend_x -= 16 + 7 * len(text) + 14
        parts.append(
            f'<rect x="{legend_x}" y="26" width="10" height="3" fill="{colour}"/>'
            f'<text x="{legend_x + 14}" y="31" class="legend">{label}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)
