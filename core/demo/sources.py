"""What the demo reads while it runs: Prometheus' HTTP API, the processor's status, the webhook journal.

Small and dependency-free (``urllib``), so the live view and the report share them. Nothing here
raises on a component that is slow or not up yet: :class:`Prometheus` answers empty results and
logs at debug level, because the view polls every few seconds and the next poll will do.
"""

from __future__ import annotations

import json
import logging
import math
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

__all__ = ["FiredAlert", "Prometheus", "fetch_json", "post", "read_journal"]


def fetch_json(url: str, *, timeout: float = 5.0) -> Any:
    """GET ``url`` and decode JSON; ``None`` when it cannot be reached or decoded."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return json.loads(response.read())
    except (urllib.error.URLError, OSError, ValueError) as exc:
        logger.debug("event=http_get_failed url=%s error=%r", url, exc)
        return None


def post(url: str, *, timeout: float = 5.0) -> bool:
    """POST an empty body (typed JSON) to ``url``; True on a 2xx answer.

    The content type is set: urllib's default (a form) is refused by the admin port's guard on
    state-changing endpoints (415), as a browser's cross-site form would be.
    """
    request = urllib.request.Request(
        url, data=b"", method="POST", headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return 200 <= response.status < 300
    except (urllib.error.URLError, OSError) as exc:
        logger.warning("event=http_post_failed url=%s error=%r", url, exc)
        return False


class Prometheus:
    """The parts of the Prometheus HTTP API the demo uses."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url.rstrip("/")

    def _get(self, path: str, **params: str) -> Any:
        document = fetch_json(f"{self.base_url}{path}?{urllib.parse.urlencode(params)}")
        if not isinstance(document, dict) or document.get("status") != "success":
            return None
        return document.get("data")

    def query(self, expr: str) -> list[dict[str, Any]]:
        """Instant vector: a list of ``{"metric": {...}, "value": [t, "v"]}``."""
        data = self._get("/api/v1/query", query=expr)
        return list(data.get("result", [])) if isinstance(data, dict) else []

    def values_by(self, expr: str, label: str) -> dict[str, float]:
        """Instant query -> ``{label value: float}`` (NaN and missing labels dropped)."""
        out: dict[str, float] = {}
        for sample in self.query(expr):
            value = float(sample["value"][1])
            key = sample["metric"].get(label)
            if key is not None and not math.isnan(value):
                out[key] = value
        return out

    def query_range(self, expr: str, start: float, end: float, step: float) -> list[tuple[float, float]]:
        """The first series of a range query as (unix time, value) points."""
        data = self._get(
            "/api/v1/query_range", query=expr, start=f"{start:.3f}", end=f"{end:.3f}", step=f"{step:.3f}"
        )
        if not isinstance(data, dict) or not data.get("result"):
            return []
        return [(float(t), float(v)) for t, v in data["result"][0]["values"]]

    def firing(self) -> list[dict[str, str]]:
        """Labels of every alert currently firing (pending ones left out)."""
        data = self._get("/api/v1/alerts")
        alerts = data.get("alerts", []) if isinstance(data, dict) else []
        return [dict(a["labels"]) for a in alerts if a.get("state") == "firing"]


@dataclass(frozen=True)
class FiredAlert:
    """An alert as it reached the webhook the first time: labels, when Prometheus fired it, when
    the notification arrived (unix seconds)."""

    labels: tuple[tuple[str, str], ...]
    fired_at: float
    webhook_at: float

    @property
    def name(self) -> str:
        return dict(self.labels).get("alertname", "?")

    def label(self, key: str) -> str | None:
        return dict(self.labels).get(key)

    def console_link(self) -> str | None:
        """Its incident page in the console, from the ``console_url`` label that ``llmpulse up``
        sets on every alert (Prometheus' external label), or None without one."""
        base = self.label("console_url")
        if not base:
            return None
        query = {k: v for k in ("alertname", "service", "feature") if (v := self.label(k))}
        return f"{base.rstrip('/')}/alert?{urllib.parse.urlencode(query)}"

    def describe(self) -> str:
        """``Name{feature=..., ...}`` without the routing labels."""
        hidden = {"alertname", "severity", "component", "console_url"}
        shown = [f"{k}={v}" for k, v in self.labels if k not in hidden]
        return f"{self.name}{{{', '.join(shown)}}}"


def _unix(timestamp: str) -> float:
    return datetime.fromisoformat(timestamp.replace("Z", "+00:00")).timestamp()


def read_journal(path: Path) -> list[FiredAlert]:
    """Every distinct firing alert in the webhook sink's JSON-lines journal, first arrival each.

    An alert is identified by its labels and start time, so one that resolves and fires again
    counts twice; repeats of the same firing are ignored.
    """
    seen: dict[tuple[tuple[tuple[str, str], ...], str], FiredAlert] = {}
    try:
        lines = path.read_text().splitlines()
    except OSError:
        return []
    for line in lines:
        try:
            notification = json.loads(line)
        except ValueError:
            continue
        for alert in notification.get("alerts", []):
            if alert.get("status") != "firing":
                continue
            labels = tuple(sorted((str(k), str(v)) for k, v in alert.get("labels", {}).items()))
            key = (labels, str(alert.get("startsAt")))
            if key not in seen:
                seen[key] = FiredAlert(
                    labels, _unix(str(alert["startsAt"])), float(notification["received_at"])
                )
    return sorted(seen.values(), key=lambda a: a.webhook_at)
