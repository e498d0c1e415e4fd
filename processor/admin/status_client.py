"""``llmpulse status``: fetch ``/api/status`` from a running processor and print a table."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

from llmpulse.errors import LLMPulseError
from llmpulse.processor.admin.handler import STATUS_PATH
from llmpulse.processor.metrics.windows import WINDOWS

DEFAULT_URL = "http://127.0.0.1:9464"


class StatusError(LLMPulseError, RuntimeError):
    """The processor could not be reached or answered something else than a status document."""


def fetch_status(url: str = DEFAULT_URL, *, timeout: float = 5.0) -> dict[str, Any]:
    """GET ``{url}/api/status`` and return the decoded document."""
    target = url.rstrip("/") + STATUS_PATH
    try:
        with urllib.request.urlopen(target, timeout=timeout) as response:
            document = json.loads(response.read())
    except urllib.error.URLError as exc:
        raise StatusError(
            f"cannot reach the processor at {target}: {exc.reason}; is `llmpulse serve` running?"
        ) from None
    except (OSError, ValueError) as exc:
        raise StatusError(f"bad answer from {target}: {exc}") from None
    if not isinstance(document, dict) or "services" not in document:
        raise StatusError(f"{target} did not return a processor status document")
    return document


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def _seconds(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value * 1000:.0f}ms" if value < 1 else f"{value:.2f}s"


def _number(value: float | None, digits: int = 0) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _usd(value: float | None) -> str:
    """Dollars: three significant digits below a cent (0.000123, 1.2e-06), four decimals below a
    dollar, cents above."""
    if value is None:
        return "-"
    if value == 0 or abs(value) >= 1:
        return f"{value:.2f}"
    return f"{value:.4f}" if abs(value) >= 0.01 else f"{value:.3g}"


COLUMNS = (
    "service",
    "feature",
    "requests",
    "errors",
    "refusals",
    "p50",
    "p95",
    "p99",
    "cost $",
    "$/req",
    "in tok",
    "out tok",
    "unpriced",
)


def _rows(document: dict[str, Any], service: str | None) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (name, feature, windows)
        for name, features in sorted(document.get("services", {}).items())
        if service is None or name == service
        for feature, windows in sorted(features.items())
    ]


def render_table(document: dict[str, Any], window: str = "5m", *, service: str | None = None) -> str:
    """The status document as a fixed-width text table for one window (one service, or all)."""
    if window not in {name for name, _ in WINDOWS}:
        raise ValueError(f"window must be one of {', '.join(name for name, _ in WINDOWS)}")
    rows: list[tuple[str, ...]] = [COLUMNS]
    for name, feature, windows in _rows(document, service):
        w = windows[window]
        mark = "" if w.get("latency_exact", True) else "~"  # sampled, not exact
        rows.append(
            (
                name,
                feature,
                str(w["requests"]),
                _pct(w["error_rate"]),
                _pct(w["refusal_rate"]),
                mark + _seconds(w["latency_p50_s"]),
                mark + _seconds(w["latency_p95_s"]),
                mark + _seconds(w["latency_p99_s"]),
                _usd(w["cost_usd_total"]),
                _usd(w["cost_usd_mean"]),
                _number(w["input_tokens_mean"]),
                _number(w["output_tokens_mean"]),
                _pct(w.get("unpriced_share")),
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(COLUMNS))]
    lines = [
        "  ".join(cell.ljust(widths[i]) if i < 2 else cell.rjust(widths[i]) for i, cell in enumerate(row))
        for row in rows
    ]
    spans = document.get("spans", {})
    queue = document.get("queue", {})
    replicas = f" ({document['replicas']} replicas)" if document.get("replicas") else ""
    header = (
        f"llmpulse {document.get('version', '?')} {document.get('state', '?')}{replicas}  window {window}  "
        f"spans received {spans.get('received', 0)}  rejected {sum(spans.get('rejected', {}).values())}  "
        f"queue {queue.get('spans', 0)}/{queue.get('capacity', 0)}"
    )
    if len(rows) == 1:
        lines.append(
            "(no LLM calls seen yet)" if service is None else f"(no LLM calls of service {service} seen yet)"
        )
    if any(cell.startswith("~") for row in rows[1:] for cell in row[5:8]):
        lines.append("~ percentile from a uniform sample: the rate exceeded --latency-samples per slot")
    pricing = document.get("pricing") or {}
    if pricing.get("version"):
        header += f"  pricing {pricing['version']}"
    if pricing.get("error"):
        lines.append(f"pricing override not in force: {pricing['error']}")
    return "\n".join([header, "", *lines, *_quality_lines(document.get("quality"), service)])


def _age(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f}s"
    return f"{seconds / 60:.0f}m" if seconds < 7200 else f"{seconds / 3600:.0f}h"


def _quality_lines(section: Any, service: str | None = None) -> list[str]:
    """The judge, and per service and feature whether content reaches the judge and drift engine."""
    if not isinstance(section, dict):
        return []
    judge = section.get("judge", {})
    if judge.get("enabled"):
        note = f"  ({judge['note']})" if judge.get("note") else ""
        line = f"judge: {judge.get('model', '?')} at {judge.get('base_url', '?')}{note}"
    else:
        line = "judge: off (set [quality.judge] base_url or LLMPULSE_JUDGE_BASE_URL)"
    rows = [
        (f"{name}/{feature}", info["content"])
        for name, features in sorted(section.get("services", {}).items())
        if service is None or name == service
        for feature, info in sorted(features.items())
        if isinstance(info, dict) and "content" in info
    ]
    out = ["", line]
    if rows:
        width = max(len(feature) for feature, _ in rows)
        out.append("content for the judge and drift (state, seconds since the last, what to do):")
        for feature, content in rows:
            out.append(
                f"  {feature.ljust(width)}  {content['state']:<16} {_age(content['age_s']):>5}  "
                f"{content['hint']}"
            )
    return out


def _longest_requests(windows: Any) -> int:
    """Calls in a feature's longest rolling window (how much of the feature a replica holds)."""
    if not isinstance(windows, dict):
        return 0
    for name, _ in reversed(WINDOWS):
        window = windows.get(name)
        if isinstance(window, dict) and isinstance(window.get("requests"), int):
            return int(window["requests"])
    return 0


def _add_counts(into: dict[str, Any], more: Any) -> None:
    """Sum ``more``'s numbers into ``into``, nested dictionaries key by key."""
    if not isinstance(more, dict):
        return
    for key, value in more.items():
        if isinstance(value, dict):
            _add_counts(into.setdefault(key, {}), value)
        elif isinstance(value, int | float) and not isinstance(value, bool):
            into[key] = into.get(key, 0) + value


def merge_status(documents: list[dict[str, Any]]) -> dict[str, Any]:
    """One status document for N processor replicas (``llmpulse up --replicas N``).

    Each (service, feature) has one owner among the replicas, which holds its rolling windows and
    quality state; while a key moves, the former owner may still show the part it saw, so the
    replica holding more calls in the longest window wins (windows' percentiles cannot be summed).
    Span and queue counts are the replicas' sums; the rest is the first replica's."""
    if len(documents) == 1:
        return documents[0]
    merged = dict(documents[0])
    services: dict[str, dict[str, Any]] = {}
    quality_services: dict[str, dict[str, Any]] = {}
    spans: dict[str, Any] = {}
    queue: dict[str, Any] = {}
    held: dict[tuple[str, str], int] = {}
    for document in documents:
        for name, features in (document.get("services") or {}).items():
            for feature, windows in (features or {}).items():
                calls = _longest_requests(windows)
                if calls >= held.get((name, feature), -1):
                    held[(name, feature)] = calls
                    services.setdefault(name, {})[feature] = windows
                    info = ((document.get("quality") or {}).get("services") or {}).get(name, {})
                    if feature in info:
                        quality_services.setdefault(name, {})[feature] = info[feature]
        _add_counts(spans, document.get("spans"))
        _add_counts(queue, document.get("queue"))
    merged["services"] = services
    merged["spans"] = spans
    merged["queue"] = queue
    if isinstance(merged.get("quality"), dict):
        merged["quality"] = {**merged["quality"], "services": quality_services}
    states = {str(document.get("state", "?")) for document in documents}
    merged["state"] = states.pop() if len(states) == 1 else "/".join(sorted(states))
    merged["replicas"] = len(documents)
    return merged
