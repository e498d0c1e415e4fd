"""Alert bundles: what on-call needs at step two, sent with the alert itself.

The console's Alertmanager webhook (``POST /api/alertmanager``, Alertmanager's webhook payload
version 4) builds, for each firing alert, the triage bundle of its incident (top flagged
samples, where the regression concentrates, what changed, the console link) and forwards one
enriched notification per delivery to the configured receiver, as generic JSON
(:func:`webhook_message`) or as a Slack incoming-webhook message (:func:`slack_message`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from llmpulse.console.incident import Incident
from llmpulse.console.sources import Alert

__all__ = [
    "BUNDLE_VERSION",
    "TOP_SAMPLES",
    "alerts_of",
    "bundle_of",
    "encode",
    "incident_path",
    "slack_message",
    "webhook_message",
]

BUNDLE_VERSION = "llmpulse-bundle/1"
TOP_SAMPLES = 5
_EXCERPT = 200


def incident_path(alert: Alert) -> str:
    return f"/incident/{quote(alert.fingerprint, safe='')}"


def alerts_of(payload: Any) -> list[Alert]:
    """The alerts of an Alertmanager webhook payload; ValueError with one line when it is not one."""
    if not isinstance(payload, dict) or not isinstance(payload.get("alerts"), list):
        raise ValueError("not an Alertmanager webhook payload: expected an object with an 'alerts' list")
    alerts = []
    for item in payload["alerts"]:
        if not isinstance(item, dict) or not isinstance(item.get("labels"), dict):
            raise ValueError("an alert of the payload has no 'labels' object")
        alerts.append(Alert.from_api(item))
    return alerts


def _excerpt(text: str | None) -> str:
    flat = " ".join((text or "").split())
    return flat if len(flat) <= _EXCERPT else flat[: _EXCERPT - 1] + "…"


def _when(t: float | None) -> str | None:
    return None if t is None else datetime.fromtimestamp(t, UTC).isoformat(timespec="seconds")


def bundle_of(incident: Incident, base_url: str) -> dict[str, Any]:
    """The JSON-ready triage bundle of one incident."""
    alert = incident.alert
    concentrates = [r for r in incident.scope if r.concentrates]
    return {
        "alertname": alert.name,
        "fingerprint": alert.fingerprint,
        "status": alert.state,
        "service": incident.service,
        "feature": incident.feature,
        "labels": alert.labels,
        "summary": alert.annotations.get("summary", ""),
        "starts_at": alert.starts_at,
        "console_url": base_url.rstrip("/") + incident_path(alert),
        "flagged_samples": incident.flagged_total,
        "top_samples": [
            {
                "id": s.id,
                "created": _when(s.record.created),
                "model": s.record.model,
                "response_model": s.record.response_model,
                "prompt_version": s.record.prompt_version,
                "app_version": s.record.app_version,
                "reasons": list(s.record.reasons),
                "judge_verdict": s.record.judge_verdict,
                "output": _excerpt(s.record.output),
            }
            for s in incident.samples[:TOP_SAMPLES]
        ],
        "scope": [
            {
                "dimension": r.dimension,
                "value": r.value,
                "flagged": r.flagged,
                "share": round(r.share, 4),
                "calls": r.calls,
                "calls_share": None if r.calls_share is None else round(r.calls_share, 4),
                "concentrates": r.concentrates,
            }
            for r in incident.scope
        ],
        "not_recorded": incident.unrecorded_dimensions,
        "concentrates_in": [{"dimension": r.dimension, "value": r.value} for r in concentrates],
        "answered_by": [
            {
                "model": a.model,
                "response_model": a.response_model,
                "calls": a.calls,
                "share": round(a.share, 4),
            }
            for a in incident.answered_by
        ],
        "what_changed": [
            {"dimension": c.dimension, "value": c.value, "first_seen": _when(c.first_seen)}
            for c in incident.changes
        ],
        "problems": incident.problems,
    }


def webhook_message(payload: dict[str, Any], bundles: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """Generic JSON: Alertmanager's own fields, plus ``bundles``."""
    return {
        "version": BUNDLE_VERSION,
        "receiver": payload.get("receiver"),
        "status": payload.get("status"),
        "groupLabels": payload.get("groupLabels", {}),
        "externalURL": payload.get("externalURL"),
        "bundles": list(bundles),
    }


def _slack_escape(text: str) -> str:
    """Slack's mrkdwn needs only &, < and > escaped; then no content can make a link or mention."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def slack_message(payload: dict[str, Any], bundles: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """A Slack incoming-webhook message: one section per alert, its link and its evidence."""
    blocks: list[dict[str, Any]] = []
    lines = []
    for b in bundles:
        title = f"{b['alertname']} · {b['service']} / {b['feature']}"
        lines.append(title)
        text = [f"*<{b['console_url']}|{_slack_escape(title)}>* ({_slack_escape(str(b['status']))})"]
        if b["summary"]:
            text.append(_slack_escape(b["summary"]))
        if b["concentrates_in"]:
            where = ", ".join(f"{c['dimension']} {c['value']}" for c in b["concentrates_in"])
            text.append(f"*concentrates in:* {_slack_escape(where)}")
        if b["what_changed"]:
            changed = ", ".join(
                f"{c['dimension']} {c['value']} (first seen {c['first_seen']})" for c in b["what_changed"]
            )
            text.append(f"*what changed:* {_slack_escape(changed)}")
        text.append(f"*flagged samples:* {b['flagged_samples']}")
        for s in b["top_samples"][:3]:
            text.append(
                f"> #{s['id']} {_slack_escape(', '.join(s['reasons']))}: {_slack_escape(s['output'])}"
            )
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": "\n".join(text)[:2900]}})
    return {"text": _slack_escape("; ".join(lines) or str(payload.get("status", ""))), "blocks": blocks}


def encode(message: dict[str, Any]) -> bytes:
    return json.dumps(message, ensure_ascii=False, sort_keys=True).encode()
