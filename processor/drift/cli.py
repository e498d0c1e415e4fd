"""``llmpulse drift status`` and ``llmpulse drift refreeze``: talk to a running processor's admin port.

``refreeze`` changes state, so it sends the processor's auth token when one is set in this
shell the way the processor reads it (``LLMPULSE_AUTH_TOKEN`` or ``LLMPULSE_AUTH_TOKEN_FILE``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx

from llmpulse.contract.environment_variables import LLMPULSE_AUTH_TOKEN, LLMPULSE_AUTH_TOKEN_FILE
from llmpulse.errors import LLMPulseError
from llmpulse.processor.admin.status_client import DEFAULT_URL
from llmpulse.processor.drift.admin import DRIFT_STATUS_PATH, REFREEZE_PATH

__all__ = ["DriftCommandError", "admin_token", "fetch_drift_status", "register", "request_refreeze"]


class DriftCommandError(LLMPulseError, RuntimeError):
    """The processor could not be reached or refused the request; the message says why."""


def admin_token(environ: Mapping[str, str] | None = None) -> str | None:
    """The auth token the processor was given through its environment variables, if any."""
    env = os.environ if environ is None else environ
    if token := env.get(LLMPULSE_AUTH_TOKEN):
        return token
    if path := env.get(LLMPULSE_AUTH_TOKEN_FILE):
        try:
            return Path(path).read_text().strip() or None
        except OSError as exc:
            raise DriftCommandError(
                f"{LLMPULSE_AUTH_TOKEN_FILE}={path} cannot be read: {exc.strerror}"
            ) from None
    return None


def _call(method: str, url: str, path: str, params: dict[str, str], timeout: float) -> dict[str, Any]:
    target = url.rstrip("/") + path
    token = admin_token() if method != "GET" else None
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        response = httpx.request(method, target, params=params, timeout=timeout, headers=headers)
    except httpx.HTTPError as exc:
        raise DriftCommandError(
            f"cannot reach the processor at {target}: {exc}; is `llmpulse serve` running?"
        ) from None
    try:
        document = response.json()
    except ValueError:
        raise DriftCommandError(f"bad answer from {target}: HTTP {response.status_code}") from None
    if response.status_code != 200:
        message = document.get("error") if isinstance(document, dict) else None
        raise DriftCommandError(f"{target}?{urlencode(params)}: HTTP {response.status_code}: {message}")
    if not isinstance(document, dict):
        raise DriftCommandError(f"bad answer from {target}: not a JSON object")
    return document


def request_refreeze(
    feature: str,
    *,
    service: str | None = None,
    url: str = DEFAULT_URL,
    from_current: bool = False,
    timeout: float = 10.0,
) -> dict[str, Any]:
    """POST ``/api/drift/refreeze`` for ``feature`` (of ``service``); returns the feature's new status."""
    params = {"feature": feature, "from": "current" if from_current else "next"}
    if service:
        params["service"] = service
    return _call("POST", url, REFREEZE_PATH, params, timeout)


def fetch_drift_status(
    url: str = DEFAULT_URL, *, feature: str | None = None, service: str | None = None, timeout: float = 10.0
) -> dict[str, Any]:
    """GET ``/api/drift`` (one feature, or the features of one service, when given)."""
    params = {name: value for name, value in (("feature", feature), ("service", service)) if value}
    return _call("GET", url, DRIFT_STATUS_PATH, params, timeout)


def register(subparsers: Any) -> None:
    """Add the ``drift`` command with its ``status`` and ``refreeze`` subcommands."""
    drift = subparsers.add_parser("drift", help="input/output drift of a running processor")
    actions = drift.add_subparsers(dest="drift_command", metavar="ACTION")
    actions.required = True

    status = actions.add_parser("status", help="print the drift status of every feature (JSON)")
    status.add_argument(
        "--url", default=DEFAULT_URL, help="admin URL of the processor (default: %(default)s)"
    )
    status.add_argument("--feature", help="only this feature")
    status.add_argument("--service", help="only this service (service.name)")
    status.set_defaults(func=run_status)

    refreeze = actions.add_parser(
        "refreeze",
        help="start a new reference window for a feature after an intended change",
        description="By default the next samples become the reference; --from-current freezes the "
        "current window at once.",
    )
    refreeze.add_argument(
        "--url", default=DEFAULT_URL, help="admin URL of the processor (default: %(default)s)"
    )
    refreeze.add_argument("--feature", required=True, help="the feature whose reference to re-freeze")
    refreeze.add_argument("--service", help="the feature's service (needed when several services have it)")
    refreeze.add_argument(
        "--from-current", action="store_true", help="freeze the current window instead of the next samples"
    )
    refreeze.set_defaults(func=run_refreeze)


def run_status(args: argparse.Namespace) -> int:
    """Entry point of ``llmpulse drift status``."""
    try:
        document = fetch_drift_status(args.url, feature=args.feature, service=args.service)
    except DriftCommandError as exc:
        print(f"llmpulse drift status: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(document, indent=2, sort_keys=True))
    return 0


def run_refreeze(args: argparse.Namespace) -> int:
    """Entry point of ``llmpulse drift refreeze``."""
    try:
        document = request_refreeze(
            args.feature, service=args.service, url=args.url, from_current=args.from_current
        )
    except DriftCommandError as exc:
        print(f"llmpulse drift refreeze: {exc}", file=sys.stderr)
        return 1
    state = document.get("state")
    print(
        f"service {document.get('service')} feature {args.feature}: reference re-frozen"
        f" ({state}, {document.get('reference_samples')} samples)"
    )
    return 0
