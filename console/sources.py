"""Clients of Prometheus' and Alertmanager's HTTP APIs, as the console uses them.

Every failure becomes :class:`SourceError` with one line naming the source, the URL and what
went wrong, so a page can show it in place of the figures instead of failing.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import httpx

from llmpulse.errors import LLMPulseError

__all__ = ["Alert", "AlertmanagerClient", "PrometheusClient", "Series", "SourceError"]


class SourceError(LLMPulseError, RuntimeError):
    """Prometheus or Alertmanager could not answer; the message says which and why."""


@dataclass(frozen=True)
class Series:
    """One series of a range query: its labels and (unix time, value) points."""

    labels: dict[str, str]
    points: list[tuple[float, float]]


@dataclass(frozen=True)
class Alert:
    """One alert as Alertmanager's API v2 reports it (or as a webhook delivered it)."""

    fingerprint: str
    labels: dict[str, str]
    annotations: dict[str, str]
    starts_at: str
    state: str
    generator_url: str = ""

    @property
    def name(self) -> str:
        return self.labels.get("alertname", "?")

    @classmethod
    def from_api(cls, item: dict[str, Any]) -> Alert:
        status = item.get("status")
        # the API gives {"state": "active", ...}; a webhook delivery gives "firing" | "resolved"
        state = status.get("state") if isinstance(status, dict) else status
        return cls(
            fingerprint=str(item.get("fingerprint", "")),
            labels={str(k): str(v) for k, v in (item.get("labels") or {}).items()},
            annotations={str(k): str(v) for k, v in (item.get("annotations") or {}).items()},
            starts_at=str(item.get("startsAt", "")),
            state=str(state or ""),
            generator_url=str(item.get("generatorURL", "")),
        )


def _get_json(client: httpx.Client, name: str, url: str, params: dict[str, Any] | None = None) -> Any:
    try:
        response = client.get(url, params=params)
    except httpx.HTTPError as exc:
        raise SourceError(f"{name} at {url} did not answer: {exc}") from None
    if response.status_code != 200:
        raise SourceError(f"{name} at {url} answered {response.status_code}: {response.text[:200]}")
    try:
        return response.json()
    except ValueError:
        raise SourceError(f"{name} at {url} answered something that is not JSON") from None


class PrometheusClient:
    """Instant and range queries against one Prometheus."""

    def __init__(self, base_url: str, *, timeout: float = 5.0, client: httpx.Client | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self._client = client or httpx.Client(timeout=timeout)

    def close(self) -> None:
        self._client.close()

    def _data(self, path: str, params: dict[str, Any]) -> Any:
        body = _get_json(self._client, "Prometheus", self.base_url + path, params)
        if body.get("status") != "success":
            raise SourceError(f"Prometheus refused {params.get('query')!r}: {body.get('error')}")
        return body["data"]

    def vector(self, query: str, *, at: float | None = None) -> list[tuple[dict[str, str], float]]:
        """An instant query: (labels, value) per series; NaN values are left out."""
        params: dict[str, Any] = {"query": query}
        if at is not None:
            params["time"] = at
        data = self._data("/api/v1/query", params)
        out = []
        for item in data.get("result", []):
            value = float(item["value"][1])
            if not math.isnan(value):
                out.append(({str(k): str(v) for k, v in item["metric"].items()}, value))
        return out

    def range(self, query: str, start: float, end: float, step: float) -> list[Series]:
        """A range query from ``start`` to ``end`` every ``step`` seconds."""
        data = self._data(
            "/api/v1/query_range", {"query": query, "start": start, "end": end, "step": max(step, 1.0)}
        )
        return [
            Series(
                {str(k): str(v) for k, v in item["metric"].items()},
                [(float(t), float(v)) for t, v in item["values"] if not math.isnan(float(v))],
            )
            for item in data.get("result", [])
        ]


class AlertmanagerClient:
    """The firing alerts of one Alertmanager."""

    def __init__(self, base_url: str, *, timeout: float = 5.0, client: httpx.Client | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self._client = client or httpx.Client(timeout=timeout)

    def close(self) -> None:
        self._client.close()

    def alerts(self) -> list[Alert]:
        """Active (firing, not silenced or inhibited) alerts, oldest first."""
        body = _get_json(
            self._client,
            "Alertmanager",
            self.base_url + "/api/v2/alerts",
            {"active": "true", "silenced": "false", "inhibited": "false"},
        )
        alerts = [Alert.from_api(item) for item in body if isinstance(item, dict)]
        return sorted(alerts, key=lambda a: (a.starts_at, a.name))
