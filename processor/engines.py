"""The engines ``llmpulse serve`` plugs into the processor: quality (checks, judge, SPC, user
signals, flagged samples), canary probes, input drift, and agents (runs, tools, sessions).

This module turns configuration into :class:`~llmpulse.processor.extension.Extension` objects
for :class:`~llmpulse.processor.service.ProcessorService` (``extensions=build_engines(...)``):
one for quality and the canary probes, one for drift, one for agents. Each engine keeps its metrics on a
registry of its own, which is added to the processor's registry as one collector, so every
family appears on the same ``/metrics``.

Configuration comes from the ``[quality]``, ``[canary]``, ``[drift]`` and ``[agents]`` tables of the file
given to ``serve --config`` (see docs/quality.md and docs/drift.md). The judge's endpoint,
model and key can also come from ``LLMPULSE_JUDGE_BASE_URL``, ``LLMPULSE_JUDGE_MODEL`` and
``LLMPULSE_JUDGE_API_KEY``. Without a judge endpoint the judge is off and says so in the log.

``[drift]`` keys: ``enabled`` (true), ``embedder`` (``hashed``, ``openai`` or ``local``),
``state_path`` (where frozen references persist across restarts; none by default),
``store_url`` (a ``postgresql://`` URL: references persist there instead, shared by replicas;
``LLMPULSE_STORE_URL`` overrides it),
``interval_s`` (1.0), an ``[drift.embedder_options]`` table passed to the embedder (for
``openai``: ``base_url``, ``model``, ``api_key``, ``timeout``, ``daily_token_budget``, ...; the
key can also come from ``LLMPULSE_EMBEDDINGS_API_KEY``) and a ``[drift.settings]`` table of
:class:`~llmpulse.processor.drift.state.DriftSettings` fields.
"""

from __future__ import annotations

import logging
import tomllib
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from prometheus_client.registry import CollectorRegistry

from llmpulse.contract import environment_variables as E
from llmpulse.processor.agents.capture import SessionCapture
from llmpulse.processor.agents.engine import AgentEngine
from llmpulse.processor.agents.extension import agents_extension
from llmpulse.processor.agents.settings import AgentConfigError, AgentSettings
from llmpulse.processor.drift.embedders import build_embedder
from llmpulse.processor.drift.engine import DriftEngine
from llmpulse.processor.drift.extension import drift_extension
from llmpulse.processor.drift.state import DriftSettings
from llmpulse.processor.extension import Extension
from llmpulse.processor.quality.canary import CanaryRunner, CanarySettings
from llmpulse.processor.quality.engine import QualityEngine
from llmpulse.processor.quality.extension import quality_extension
from llmpulse.processor.quality.settings import QualityConfigError, QualitySettings
from llmpulse.processor.settings import CONFIG_TABLE, CONFIG_TABLES, ConfigError
from llmpulse.processor.store.factory import is_url, open_store
from llmpulse.processor.store.protocols import StoreError

logger = logging.getLogger(__name__)

ENV_JUDGE_BASE_URL = E.LLMPULSE_JUDGE_BASE_URL
ENV_JUDGE_MODEL = E.LLMPULSE_JUDGE_MODEL
ENV_JUDGE_API_KEY = E.LLMPULSE_JUDGE_API_KEY
ENV_STORE_URL = E.LLMPULSE_STORE_URL
ENV_EMBEDDINGS_API_KEY = E.LLMPULSE_EMBEDDINGS_API_KEY
_DRIFT_KEYS = frozenset(
    {"enabled", "embedder", "state_path", "store_url", "interval_s", "embedder_options", "settings"}
)
ENGINE_TABLES = tuple(t for t in CONFIG_TABLES if t != CONFIG_TABLE)


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
    """Quality settings from the ``[quality]`` table, with the judge endpoint and the store URL
    from the environment."""
    table = dict(table)
    if environ.get(ENV_STORE_URL):
        table["store_url"] = environ[ENV_STORE_URL]
    try:
        settings = QualitySettings.from_dict(table)
    except QualityConfigError as exc:
        where = f" (with {ENV_STORE_URL})" if environ.get(ENV_STORE_URL) else ""
        raise ConfigError(f"[quality]{where}: {exc}") from None
    judge = settings.judge
    overrides: dict[str, Any] = {}
    if environ.get(ENV_JUDGE_BASE_URL):
        overrides["base_url"] = environ[ENV_JUDGE_BASE_URL]
        overrides["note"] = ""  # a note in the file describes the file's endpoint
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
    if not overrides:
        return settings
    settings = replace(settings, judge=replace(judge, **overrides))
    try:
        settings.validate()
    except QualityConfigError as exc:
        raise ConfigError(f"[quality] with {ENV_JUDGE_BASE_URL}: {exc}") from None
    return settings


def build_drift(table: Mapping[str, Any], environ: Mapping[str, str]) -> Extension | None:
    """The drift extension described by the ``[drift]`` table; None when disabled."""
    unknown = sorted(set(table) - _DRIFT_KEYS)
    if unknown:
        raise ConfigError(
            f"[drift]: unknown key(s) {', '.join(unknown)}; known: {', '.join(sorted(_DRIFT_KEYS))}"
        )
    if not table.get("enabled", True):
        return None
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
    url = environ.get(ENV_STORE_URL) or table.get("store_url")
    if not url:
        return drift_extension(
            engine, state_path=table.get("state_path"), interval=float(table.get("interval_s", 1.0))
        )
    if not is_url(str(url)):
        raise ConfigError(f"[drift] store_url must be a postgresql:// URL, got {str(url).split('@')[-1]!r}")
    try:
        store = open_store(str(url))
    except StoreError as exc:
        raise ConfigError(f"[drift] store: {exc}") from None
    return drift_extension(
        engine,
        references=store.references,
        close_references=store.close,
        interval=float(table.get("interval_s", 1.0)),
    )


def build_engines(
    tables: Mapping[str, Mapping[str, Any]], environ: Mapping[str, str], *, max_label_values: int = 100
) -> list[Extension]:
    """The quality (with the canary runner) and drift extensions, from their config tables.

    ``[quality] enabled = false`` (and ``[drift] enabled = false``) leave the processor with its
    derived metrics alone.
    """
    extensions: list[Extension] = []
    quality_table = dict(tables.get("quality", {}))
    quality: QualityEngine | None = None
    if quality_table.pop("enabled", True):
        extension, quality = build_quality(quality_table, tables.get("canary", {}), environ)
        extensions.append(extension)
    drift = build_drift(tables.get("drift", {}), environ)
    if drift is not None:
        extensions.append(drift)
    agents = build_agents(tables.get("agents", {}), max_label_values=max_label_values, quality=quality)
    if agents is not None:
        extensions.append(agents)
    return extensions


def build_agents(
    table: Mapping[str, Any], *, max_label_values: int = 100, quality: QualityEngine | None = None
) -> Extension | None:
    """The agents extension described by the ``[agents]`` table; None when disabled.

    With the quality engine, closed sessions sampled for judging go to its judge, and (with
    ``capture_sessions``) their turns to its store, opened here a second time so the writer
    closes its own connection after the last session is stored; verdicts follow them there.
    A call the quality engine flags makes its open session keep its turns from then on too.
    """
    try:
        settings = AgentSettings.from_dict(table)
    except AgentConfigError as exc:
        raise ConfigError(f"[agents]: {exc}") from None
    if not settings.enabled:
        return None
    capture: SessionCapture | None = None
    if quality is not None and settings.capture_sessions:
        capture = _session_capture(quality, settings)
    engine = AgentEngine(
        settings,
        max_label_values=max_label_values,
        session_judge=None if quality is None else quality.offer_session,
        capture=capture,
    )
    if quality is not None and capture is not None:
        quality.on_flagged(engine.promote)  # a flagged call's session is captured too
    return agents_extension(engine)


def _session_capture(quality: QualityEngine, settings: AgentSettings) -> SessionCapture | None:
    """The writer of captured sessions into the quality engine's store (None for a store in
    memory, which nothing else could read)."""
    qs = quality.settings
    location = qs.store_url or qs.db_path
    if location == ":memory:":
        return None
    try:
        store = open_store(location, retention_days=qs.retention_days)
    except StoreError as exc:
        raise ConfigError(f"[agents] session capture store: {exc}") from None
    capture = SessionCapture(store.sessions, max_bytes=settings.capture_bytes, close=store.close)
    quality.judging.on_session_verdict = capture.verdict
    return capture


def build_quality(
    table: Mapping[str, Any], canary_table: Mapping[str, Any], environ: Mapping[str, str]
) -> tuple[Extension, QualityEngine]:
    """The quality extension (the quality engine and the canary runner), and its engine."""
    registry = CollectorRegistry(auto_describe=False)
    try:
        quality = QualityEngine(quality_settings(table, environ), registry=registry)
    except StoreError as exc:  # the store cannot be opened: say where and what to check
        raise ConfigError(f"[quality] store: {exc}") from None
    try:
        canary_settings = CanarySettings.from_dict(dict(canary_table))
    except QualityConfigError as exc:
        raise ConfigError(f"[canary]: {exc}") from None
    canary = CanaryRunner(canary_settings, quality.metrics)
    return quality_extension(quality, registry=registry, canary=canary, stop_timeout=5.0), quality
