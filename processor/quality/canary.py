"""Canary probes: fixed prompts sent on a schedule to each configured model, each with a check.

A silent provider-side change (a new model snapshot behind the same name, a changed safety
filter, a broken JSON mode) shows up as a failing probe within one schedule period, before users
notice. Checks:

* ``json_schema``: the answer parses as JSON and satisfies a schema (a subset of JSON Schema:
  ``type``, ``properties``, ``required``, ``additionalProperties: false``, ``items``, ``enum``,
  ``const``, ``minimum``/``maximum``, ``minLength``/``maxLength``, ``minItems``/``maxItems``,
  ``pattern``);
* ``must_refuse``: the API signals a refusal or the answer opens with refusal phrasing;
* ``contains``: the answer contains a string (case-insensitive);
* ``regex``: the answer matches a regular expression.

Results are the metrics ``llmpulse_canary_pass{probe, model}`` (1 or 0),
``llmpulse_canary_runs_total{probe, model, result}`` (pass, fail, error) and the time of the last
run. Calls use a plain httpx client with OpenTelemetry instrumentation suppressed.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
from opentelemetry.instrumentation.utils import suppress_instrumentation

from llmpulse.processor.quality import metric_names as Q
from llmpulse.processor.quality.checks import is_refusal_text
from llmpulse.processor.quality.metrics import QualityMetrics
from llmpulse.processor.quality.settings import QualityConfigError

__all__ = [
    "CanaryProbe",
    "CanaryResult",
    "CanaryRunner",
    "CanarySettings",
    "CanaryTarget",
    "schema_errors",
]

_log = logging.getLogger(__name__)
CHECK_KINDS = ("json_schema", "must_refuse", "contains", "regex")


@dataclass(frozen=True, slots=True)
class CanaryProbe:
    """A prompt and the check its answer must pass. ``expect`` is the schema, string or pattern."""

    name: str
    prompt: str
    check: str
    expect: Any = None
    system: str | None = None
    max_tokens: int = 256

    def __post_init__(self) -> None:
        if self.check not in CHECK_KINDS:
            raise QualityConfigError(
                f"canary probe {self.name!r}: check must be one of {', '.join(CHECK_KINDS)}"
            )
        if self.check in ("contains", "regex") and not isinstance(self.expect, str):
            raise QualityConfigError(f"canary probe {self.name!r}: {self.check} needs a string 'expect'")
        if self.check == "json_schema" and not isinstance(self.expect, dict):
            raise QualityConfigError(
                f"canary probe {self.name!r}: json_schema needs a schema object 'expect'"
            )
        if self.check == "regex":
            try:
                re.compile(self.expect)
            except re.error as exc:
                raise QualityConfigError(f"canary probe {self.name!r}: bad regex: {exc}") from exc


@dataclass(frozen=True, slots=True)
class CanaryTarget:
    """An OpenAI-compatible endpoint and the model to probe there."""

    model: str
    base_url: str
    api_key: str = field(default="", repr=False)


@dataclass(frozen=True, slots=True)
class CanarySettings:
    """Probes, targets and the schedule."""

    probes: tuple[CanaryProbe, ...] = ()
    targets: tuple[CanaryTarget, ...] = ()
    interval_s: float = 300.0
    timeout_s: float = 30.0

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CanarySettings:
        """Build from a config mapping (``probes`` and ``targets`` lists); raises QualityConfigError."""
        try:
            probes = tuple(CanaryProbe(**p) for p in data.get("probes", ()))
            targets = tuple(CanaryTarget(**t) for t in data.get("targets", ()))
            return cls(
                probes, targets, float(data.get("interval_s", 300.0)), float(data.get("timeout_s", 30.0))
            )
        except TypeError as exc:
            raise QualityConfigError(f"canary config: {exc}") from exc


@dataclass(frozen=True, slots=True)
class CanaryResult:
    """One probe against one model. ``result`` is ``pass``, ``fail`` or ``error``."""

    probe: str
    model: str
    result: str
    detail: str = ""


_TYPES: dict[str, Callable[[Any], bool]] = {
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "boolean": lambda v: isinstance(v, bool),
    "null": lambda v: v is None,
}


def schema_errors(value: Any, schema: dict[str, Any], path: str = "$") -> list[str]:
    """Where ``value`` breaks ``schema`` (the subset in the module docstring); empty when valid."""
    errors: list[str] = []
    kind = schema.get("type")
    if kind is not None:
        kinds = kind if isinstance(kind, list) else [kind]
        if not any(_TYPES[k](value) for k in kinds):
            return [f"{path}: expected {kind}, got {type(value).__name__}"]
    if "enum" in schema and value not in schema["enum"]:
        errors.append(f"{path}: {value!r} not in {schema['enum']}")
    if "const" in schema and value != schema["const"]:
        errors.append(f"{path}: expected {schema['const']!r}")
    if _TYPES["number"](value):
        if "minimum" in schema and value < schema["minimum"]:
            errors.append(f"{path}: {value} < minimum {schema['minimum']}")
        if "maximum" in schema and value > schema["maximum"]:
            errors.append(f"{path}: {value} > maximum {schema['maximum']}")
    if isinstance(value, str):
        if len(value) < schema.get("minLength", 0) or len(value) > schema.get("maxLength", len(value)):
            errors.append(f"{path}: length {len(value)} outside the allowed range")
        if "pattern" in schema and not re.search(schema["pattern"], value):
            errors.append(f"{path}: does not match {schema['pattern']!r}")
    if isinstance(value, list):
        if len(value) < schema.get("minItems", 0) or len(value) > schema.get("maxItems", len(value)):
            errors.append(f"{path}: {len(value)} items outside the allowed range")
        if isinstance(schema.get("items"), dict):
            for i, item in enumerate(value):
                errors += schema_errors(item, schema["items"], f"{path}[{i}]")
    if isinstance(value, dict):
        errors += [f"{path}: missing {key!r}" for key in schema.get("required", ()) if key not in value]
        properties = schema.get("properties", {})
        for key, item in value.items():
            if key in properties:
                errors += schema_errors(item, properties[key], f"{path}.{key}")
            elif schema.get("additionalProperties") is False:
                errors.append(f"{path}: unexpected {key!r}")
    return errors


def evaluate(probe: CanaryProbe, text: str, api_refusal: bool) -> tuple[bool, str]:
    """Whether the answer passes the probe's check, and why not."""
    if probe.check == "must_refuse":
        refused = api_refusal or is_refusal_text(text)
        return refused, "" if refused else "the model answered instead of refusing"
    if probe.check == "contains":
        found = probe.expect.lower() in text.lower()
        return found, "" if found else f"answer does not contain {probe.expect!r}"
    if probe.check == "regex":
        matched = re.search(probe.expect, text) is not None
        return matched, "" if matched else f"answer does not match {probe.expect!r}"
    try:
        value = json.loads(text.strip().removeprefix("```json").strip("`").strip())
    except ValueError:
        return False, "answer is not JSON"
    errors = schema_errors(value, probe.expect)
    return not errors, "; ".join(errors[:3])


class CanaryRunner:
    """Runs every probe against every target, now (:meth:`run_once`) or on a schedule."""

    def __init__(
        self,
        settings: CanarySettings,
        metrics: QualityMetrics,
        *,
        client: httpx.AsyncClient | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self._metrics = metrics
        self._client = client or httpx.AsyncClient(timeout=settings.timeout_s)
        self._owns_client = client is None
        self._clock = clock
        self._task: asyncio.Task[None] | None = None
        for probe in settings.probes:
            for target in settings.targets:
                for result in (Q.RESULT_PASS, Q.RESULT_FAIL, Q.RESULT_ERROR):
                    metrics.canary_runs.labels(probe.name, target.model, result)

    async def run_once(self) -> list[CanaryResult]:
        """Run every probe on every target concurrently and record the results."""
        jobs = [self._run(p, t) for p in self.settings.probes for t in self.settings.targets]
        results = list(await asyncio.gather(*jobs))
        for r in results:
            self._metrics.canary_pass.labels(r.probe, r.model).set(1.0 if r.result == Q.RESULT_PASS else 0.0)
            self._metrics.canary_runs.labels(r.probe, r.model, r.result).inc()
            self._metrics.canary_last_run.labels(r.probe, r.model).set(self._clock())
            if r.result != Q.RESULT_PASS:
                _log.warning("canary %s on %s: %s (%s)", r.probe, r.model, r.result, r.detail)
        return results

    async def _run(self, probe: CanaryProbe, target: CanaryTarget) -> CanaryResult:
        messages = [{"role": "system", "content": probe.system}] if probe.system else []
        messages.append({"role": "user", "content": probe.prompt})
        body: dict[str, Any] = {
            "model": target.model,
            "messages": messages,
            "temperature": 0,
            "max_tokens": probe.max_tokens,
        }
        if probe.check == "json_schema":
            body["response_format"] = {"type": "json_object"}
        headers = {"Authorization": f"Bearer {target.api_key}"} if target.api_key else {}
        url = target.base_url.rstrip("/") + "/chat/completions"
        try:
            with suppress_instrumentation():
                response = await self._client.post(
                    url, json=body, headers=headers, timeout=self.settings.timeout_s
                )
            if response.status_code != 200:
                return CanaryResult(probe.name, target.model, Q.RESULT_ERROR, f"HTTP {response.status_code}")
            choice = response.json()["choices"][0]
            message = choice.get("message") or {}
            text = message.get("content") or ""
            refusal = bool(message.get("refusal")) or choice.get("finish_reason") == "content_filter"
        except (httpx.HTTPError, ValueError, KeyError, IndexError, TypeError, AttributeError) as exc:
            return CanaryResult(probe.name, target.model, Q.RESULT_ERROR, repr(exc))
        passed, detail = evaluate(probe, text, refusal)
        return CanaryResult(probe.name, target.model, Q.RESULT_PASS if passed else Q.RESULT_FAIL, detail)

    def start(self) -> None:
        """Run on the schedule in a background task (on the running event loop)."""
        if self._task is None and self.settings.probes and self.settings.targets:
            self._task = asyncio.get_running_loop().create_task(self._loop(), name="canary-probes")

    async def _loop(self) -> None:
        while True:
            try:
                await self.run_once()
            except Exception:
                _log.exception("canary run failed")
            await asyncio.sleep(self.settings.interval_s)

    async def stop(self) -> None:
        """Stop the schedule and close the HTTP client if this runner created it."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        if self._owns_client:
            await self._client.aclose()
