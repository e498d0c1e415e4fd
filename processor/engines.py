"""The engines ``llmpulse serve`` plugs into the processor: quality (checks, judge, SPC, user
signals, flagged samples), canary probes and input drift.

They attach through the processor's extension points (:class:`ProcessorService` ``listeners``,
``collectors``, ``admin_routes``, ``status_sections``): each engine keeps its metrics on a
registry of its own, which is added to the processor's registry as one collector, so every
family appears on the same ``/metrics``.

Configuration comes from the ``[quality]``, ``[canary]`` and ``[drift]`` tables of the file
given to ``serve --config`` (see docs/quality.md and docs/drift.md). The judge's endpoint,
model and key can also come from ``LLMPULSE_JUDGE_BASE_URL``, ``LLMPULSE_JUDGE_MODEL`` and
``LLMPULSE_JUDGE_API_KEY``. Without a judge endpoint the judge is off and says so in the log.

``[drift]`` keys: ``enabled`` (true), ``embedder`` (``hashed``, ``openai`` or ``local``),
``state_path`` (where frozen references persist across restarts; none by default),
``interval_s`` (1.0), an ``[drift.embedder_options]`` table passed to the embedder (for
``openai``: ``base_url``, ``model``, ``api_key``, ``timeout``, ``daily_token_budget``, ...; the
key can also come from ``LLMPULSE_EMBEDDINGS_API_KEY``) and a ``[drift.settings]`` table of
:class:`~llmpulse.processor.drift.state.DriftSettings` fields.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import tomllib
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from prometheus_client.registry import CollectorRegistry

from llmpulse.processor.drift.embedders import build_embedder
from llmpulse.processor.drift.engine import DriftEngine
from llmpulse.processor.drift.listener import service_extensions
from llmpulse.processor.drift.state import DriftSettings
from llmpulse.processor.http_server import Handler
from llmpulse.processor.pipeline.records import Feedback, LLMCall
from llmpulse.processor.quality.canary import CanaryRunner, CanarySettings
from llmpulse.processor.quality.engine import QualityEngine
from llmpulse.processor.quality.ingest import feedback_from_record, sample_from_call
from llmpulse.processor.quality.settings import QualityConfigError, QualitySettings
from llmpulse.processor.quality.status import quality_status
from llmpulse.processor.settings import ConfigError

logger = logging.getLogger(__name__)

ENV_JUDGE_BASE_URL = "LLMPULSE_JUDGE_BASE_URL"
ENV_JUDGE_MODEL = "LLMPULSE_JUDGE_MODEL"
ENV_JUDGE_API_KEY = "LLMPULSE_JUDGE_API_KEY"
ENV_EMBEDDINGS_API_KEY = "LLMPULSE_EMBEDDINGS_API_KEY"
_DRIFT_KEYS = frozenset({"enabled", "embedder", "state_path", "interval_s", "embedder_options", "settings"})
ENGINE_TABLES = ("quality", "canary", "drift")


@dataclass
class EngineSet:
    """What the engines add to a :class:`ProcessorService`, and their lifecycle."""

    listeners: list[Any] = field(default_factory=list)
    collectors: list[Any] = field(default_factory=list)
    admin_routes: dict[str, Handler] = field(default_factory=dict)
    status_sections: dict[str, Callable[[], Any]] = field(default_factory=dict)
    starters: list[Callable[[], Awaitable[None]]] = field(default_factory=list)
    stoppers: list[Callable[[], Awaitable[None]]] = field(default_factory=list)

    async def start(self) -> None:
        for start in self.starters:
            await start()

    async def stop(self) -> None:
        for stop in reversed(self.stoppers):
            try:
                await stop()
            except Exception:  # one engine failing to stop must not keep the others running
                logger.exception("event=engine_stop_failed")


class QualityListener:
    """Hands every counted LLM call and feedback event to the quality engine."""

    def __init__(self, engine: QualityEngine) -> None:
        self._engine = engine

    def on_call(self, call: LLMCall, span: Any | None) -> None:
        # Content attributes are only worth a scan of the span when the normaliser saw them.
        self._engine.observe(sample_from_call(call, span if call.has_content else None), defer_counts=True)

    def on_batch_end(self) -> None:
        self._engine.flush_counts()

    def on_feedback(self, feedback: Feedback, span: Any | None) -> None:
        self._engine.observe_feedback(feedback_from_record(feedback, span))


def load_engine_config(path: str | None) -> dict[str, dict[str, Any]]:
    """The engine tables of the ``serve --config`` file (empty tables without a file)."""
    if not path:
        return {name: {} for name in ENGINE_TABLES}
    try:
        with Path(path).open("rb") as fh:
            document = tomllib.load(fh)
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"config file {path}: {exc}") from None
    tables: dict[str, dict[str, Any]] = {}
    for name in ENGINE_TABLES:
        table = document.get(name, {})
        if not isinstance(table, dict):
            raise ConfigError(f"config file {path}: [{name}] must be a table")
        tables[name] = table
    return tables


def quality_settings(table: Mapping[str, Any], environ: Mapping[str, str]) -> QualitySettings:
    """Quality settings from the ``[quality]`` table, with the judge endpoint from the environment."""
    try:
        settings = QualitySettings.from_dict(dict(table))
    except QualityConfigError as exc:
        raise ConfigError(f"[quality]: {exc}") from None
    judge = settings.judge
    overrides: dict[str, Any] = {}
    if environ.get(ENV_JUDGE_BASE_URL):
        overrides["base_url"] = environ[ENV_JUDGE_BASE_URL]
    if environ.get(ENV_JUDGE_MODEL):
        overrides["model"] = environ[ENV_JUDGE_MODEL]
    if environ.get(ENV_JUDGE_API_KEY):
        overrides["api_key"] = environ[ENV_JUDGE_API_KEY]
    configured = "base_url" in dict(table).get("judge", {}) or "base_url" in overrides
    if judge.enabled and not configured:
        logger.warning(
            "event=judge_off reason=no_endpoint hint='set [quality.judge] base_url or %s'", ENV_JUDGE_BASE_URL
        )
        overrides["enabled"] = False
    return replace(settings, judge=replace(judge, **overrides)) if overrides else settings


def build_drift(table: Mapping[str, Any], environ: Mapping[str, str], engines: EngineSet) -> None:
    """Add the drift engine described by the ``[drift]`` table to ``engines`` (unless disabled)."""
    unknown = sorted(set(table) - _DRIFT_KEYS)
    if unknown:
        raise ConfigError(
            f"[drift]: unknown key(s) {', '.join(unknown)}; known: {', '.join(sorted(_DRIFT_KEYS))}"
        )
    if not table.get("enabled", True):
        return
    kind = str(table.get("embedder", "hashed"))
    options = dict(table.get("embedder_options", {}))
    if kind == "openai" and "api_key" not in options and environ.get(ENV_EMBEDDINGS_API_KEY):
        options["api_key"] = environ[ENV_EMBEDDINGS_API_KEY]
    try:
        embedder = build_embedder(kind, **options)
        settings = DriftSettings(**dict(table.get("settings", {})))
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"[drift]: {exc}") from None
    engine = DriftEngine(
        registry=CollectorRegistry(auto_describe=False), embedder=embedder, settings=settings
    )
    state_path = table.get("state_path")
    interval = float(table.get("interval_s", 1.0))
    extensions = service_extensions(engine)
    engines.listeners.extend(extensions["listeners"])
    engines.collectors.extend(extensions["collectors"])
    engines.admin_routes.update(extensions["admin_routes"])
    engines.status_sections.update(extensions["status_sections"])
    tasks: list[asyncio.Task[None]] = []

    async def start() -> None:
        if state_path and Path(state_path).exists():
            await asyncio.to_thread(engine.load_state, state_path)
        tasks.append(asyncio.get_running_loop().create_task(engine.run(interval=interval), name="drift"))

    async def stop() -> None:
        for task in tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if state_path:
            await asyncio.to_thread(engine.save_state, state_path)

    engines.starters.append(start)
    engines.stoppers.append(stop)


def build_engines(tables: Mapping[str, Mapping[str, Any]], environ: Mapping[str, str]) -> EngineSet:
    """Build the quality engine, canary runner and drift engine from their config tables.

    ``[quality] enabled = false`` (and ``[drift] enabled = false``) leave the processor with its
    derived metrics alone.
    """
    engines = EngineSet()
    quality_table = dict(tables.get("quality", {}))
    if quality_table.pop("enabled", True):
        build_quality(quality_table, tables.get("canary", {}), environ, engines)
    build_drift(tables.get("drift", {}), environ, engines)
    return engines


def build_quality(
    table: Mapping[str, Any], canary_table: Mapping[str, Any], environ: Mapping[str, str], engines: EngineSet
) -> None:
    """Add the quality engine and the canary runner to ``engines``."""
    registry = CollectorRegistry(auto_describe=False)
    quality = QualityEngine(quality_settings(table, environ), registry=registry)
    try:
        canary_settings = CanarySettings.from_dict(dict(canary_table))
    except QualityConfigError as exc:
        raise ConfigError(f"[canary]: {exc}") from None
    canary = CanaryRunner(canary_settings, quality.metrics)

    async def start_quality() -> None:
        await quality.start()
        canary.start()

    async def stop_quality() -> None:
        await canary.stop()
        await quality.stop(timeout=5.0)

    engines.listeners.append(QualityListener(quality))
    engines.collectors.append(registry)
    engines.status_sections["quality"] = lambda: quality_status(quality)
    engines.starters.append(start_quality)
    engines.stoppers.append(stop_quality)
