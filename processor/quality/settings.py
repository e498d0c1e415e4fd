"""Settings of the quality engine: one immutable object, parsed once.

:meth:`QualitySettings.from_dict` reads the ``quality`` section of a config file (the shape is
documented in ``docs/quality.md``) and raises :class:`QualityConfigError` with the offending key
on bad input, so the service can fail fast.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field, fields, replace
from typing import Any
from urllib.parse import urlsplit

from llmpulse.errors import ConfigError
from llmpulse.processor.spc.ewma import DEFAULT_L, DEFAULT_LAMBDA, DEFAULT_WARMUP

__all__ = [
    "CONTEXT_DIMENSIONS",
    "DEFAULT_DIMENSIONS",
    "SCOPE_SESSION",
    "SESSION_DIMENSIONS",
    "FeatureRules",
    "JudgeSettings",
    "QualityConfigError",
    "QualitySettings",
    "RegexRule",
    "SignalSettings",
    "SpcSettings",
]

DEFAULT_DIMENSIONS = ("correctness", "completeness", "tone")
CONTEXT_DIMENSIONS = ("relevance", "groundedness")
SESSION_DIMENSIONS = ("goal_met", "frustration_free", "consistency")
"""What a whole conversation is judged on (session judging): scores 1-5, higher is better."""
SCOPE_SESSION = "session"
"""``QualitySample.scope`` of a whole conversation."""
"""Judged in addition when the sample carries retrieved context."""


class QualityConfigError(ConfigError):
    """The quality or canary configuration is invalid; the message names the key and what to do."""


@dataclass(frozen=True, slots=True)
class RegexRule:
    """A per-feature rule: the output must (``must_match``) or must not match ``pattern``."""

    name: str
    pattern: str
    must_match: bool = False

    def __post_init__(self) -> None:
        try:
            re.compile(self.pattern)
        except re.error as exc:
            raise QualityConfigError(
                f"regex rule {self.name!r}: bad pattern {self.pattern!r}: {exc}"
            ) from exc

    @property
    def compiled(self) -> re.Pattern[str]:
        """The compiled pattern (``re`` caches compilations)."""
        return re.compile(self.pattern)


@dataclass(frozen=True, slots=True)
class FeatureRules:
    """Per-feature expectations: output length band, regex rules, judge sample rate."""

    min_chars: int = 0
    max_chars: int | None = None
    rules: tuple[RegexRule, ...] = ()
    judge_rate: float | None = None
    """Share of this feature's calls to judge; ``None`` uses the engine default."""
    requests_per_window: int | None = None
    """Calls per SPC window for this feature (``None``: ``spc.requests_per_window``). A quiet
    feature needs fewer to get a point an hour or so; its rate charts then have a coarser floor."""


@dataclass(frozen=True, slots=True)
class JudgeSettings:
    """The LLM judge: an OpenAI-compatible chat endpoint and the guards around it."""

    base_url: str = "https://api.openai.com/v1"
    model: str = "gpt-4o-mini"
    api_key: str = field(default="", repr=False)
    enabled: bool = True
    timeout_s: float = 30.0
    max_retries: int = 2
    backoff_s: float = 0.5
    backoff_max_s: float = 8.0
    requests_per_second: float = 2.0
    burst: int = 4
    daily_token_budget: int = 2_000_000
    daily_usd_budget: float = 5.0
    input_usd_per_million: float | None = None
    """Price override; by default the judge model is priced with the shared pricing table."""
    output_usd_per_million: float | None = None
    breaker_failures: int = 5
    breaker_cooldown_s: float = 60.0
    workers: int = 2
    queue_size: int = 1000
    fail_at_or_below: float = 2.0
    """A dimension scored at or below this is a ``fail``; a failing ``correctness`` flags the sample."""
    flag_overall_below: float = 3.0
    """A sample whose mean score is below this is flagged."""
    max_content_chars: int = 8000
    note: str = ""
    """Shown beside the judge in ``llmpulse status`` (``llmpulse up`` says its judge is fake)."""


@dataclass(frozen=True, slots=True)
class SpcSettings:
    """EWMA charts: parameters and the window each statistic is computed over."""

    lambda_: float = DEFAULT_LAMBDA
    L: float = DEFAULT_L
    warmup_windows: int = DEFAULT_WARMUP
    """Windows that estimate a chart's baseline after a (re)start or reset."""
    design_limits: bool = True
    """Widen ``L`` for the estimated baseline so false alarms within 100 windows after the
    warm-up are as rare as with a known baseline (``llmpulse.processor.spc.design``)."""
    requests_per_window: int = 100
    """Error rate, refusal rate, p95 latency and cost per request: one point per this many calls."""
    scores_per_window: int = 20
    """Mean judge score: one point per this many verdicts."""


@dataclass(frozen=True, slots=True)
class SignalSettings:
    """User signals over a rolling window, and the survivorship-bias thresholds."""

    window_s: float = 3600.0
    bucket_s: float = 60.0
    risk_abandonment_rate: float = 0.3
    risk_positive_rate: float = 0.8
    risk_max_coverage: float = 0.2


@dataclass(frozen=True, slots=True)
class QualitySettings:
    """Everything the quality engine needs."""

    judge: JudgeSettings = JudgeSettings()
    spc: SpcSettings = SpcSettings()
    signals: SignalSettings = SignalSettings()
    judge_rate: float = 0.05
    """Default share of calls judged, decided by trace id (``llmpulse.contract.sampling``)."""
    audit_rate: float = 0.1
    """Share of judged, unflagged samples stored anyway so humans can measure judge agreement."""
    features: dict[str, FeatureRules] = field(default_factory=dict)
    default_rules: FeatureRules = FeatureRules()
    context_limit_fraction: float = 0.9
    context_limits: dict[str, int] = field(default_factory=dict)
    """Extra or overriding model context windows in tokens."""
    db_path: str = "llmpulse-quality.db"
    store_url: str | None = None
    """A ``postgresql://`` URL: keep flagged samples, labels, SPC charts and the judge budget in
    PostgreSQL, shared by every replica, instead of the SQLite file at ``db_path``
    (``LLMPULSE_STORE_URL`` overrides it; see docs/store.md)."""
    retention_days: float = 30.0
    retention_rows: int = 100_000
    recent_samples: int = 10_000
    """Recent samples remembered by response id, so negative feedback can flag them."""
    recent_bytes: int = 32 * 1024 * 1024
    """Characters of content those recent samples may hold together; the oldest go first."""
    check_samples_per_minute: int = 60
    """Samples flagged by the cheap checks that are stored, per feature and minute. The rest are
    counted (``flagged_total``) but not stored: an outage that fails every call would otherwise
    write every call. Judge and feedback flags are always stored. 0 stores none."""
    content_missing_after_s: float = 300.0
    """A feature without judgeable content for this long is logged and shown as missing content."""
    tick_s: float = 15.0
    """Seconds between the engine's periodic work: the user-signal, agreement and judge gauges
    refreshed from state, changed charts saved, reset requests applied. The user-signal gauges
    (survivorship risk included) are as old as this at most."""

    def rules_for(self, feature: str) -> FeatureRules:
        """The rules of ``feature`` (the defaults when it has none)."""
        return self.features.get(feature, self.default_rules)

    def rate_for(self, feature: str) -> float:
        """The judge sample rate of ``feature``."""
        rate = self.rules_for(feature).judge_rate
        return self.judge_rate if rate is None else rate

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> QualitySettings:
        """Build settings from a config mapping; unknown keys and bad values raise QualityConfigError."""
        data = dict(data)
        try:
            judge = _build(JudgeSettings, data.pop("judge", {}), "judge")
            spc = _build(SpcSettings, _rename(data.pop("spc", {}), "lambda", "lambda_"), "spc")
            signals = _build(SignalSettings, data.pop("signals", {}), "signals")
            features = {
                str(name): _rules(spec, f"features.{name}") for name, spec in data.pop("features", {}).items()
            }
            default_rules = _rules(data.pop("default_rules", {}), "default_rules")
            settings = _build(cls, data, "quality")
        except (TypeError, AttributeError) as exc:
            raise QualityConfigError(f"quality config: {exc}") from exc
        settings = replace(
            settings, judge=judge, spc=spc, signals=signals, features=features, default_rules=default_rules
        )
        settings.validate()
        return settings

    def validate(self) -> None:
        """Raise QualityConfigError when a value is out of range."""
        if self.store_url is not None and not self.store_url.startswith(("postgresql://", "postgres://")):
            raise QualityConfigError(
                f"store_url must be a postgresql:// URL, got {self.store_url.split('@')[-1]!r}"
                " (for a SQLite file set db_path)"
            )
        for name, rate in [("judge_rate", self.judge_rate), ("audit_rate", self.audit_rate)] + [
            (f"features.{f}.judge_rate", r.judge_rate)
            for f, r in self.features.items()
            if r.judge_rate is not None
        ]:
            if not 0.0 <= rate <= 1.0:
                raise QualityConfigError(f"{name} must be between 0 and 1, got {rate}")
        if not 0.0 < self.spc.lambda_ <= 1.0 or self.spc.L <= 0:
            raise QualityConfigError(f"spc.lambda must be in (0, 1] and spc.L > 0, got {self.spc}")
        if not self.content_missing_after_s > 0:
            raise QualityConfigError("content_missing_after_s must be > 0")
        if not (math.isfinite(self.tick_s) and self.tick_s > 0):
            raise QualityConfigError(f"tick_s must be a number of seconds > 0, got {self.tick_s}")
        if self.check_samples_per_minute < 0:
            raise QualityConfigError("check_samples_per_minute must be >= 0")
        for name, rules in self.features.items():
            if rules.requests_per_window is not None and rules.requests_per_window < 2:
                raise QualityConfigError(f"features.{name}.requests_per_window must be at least 2")
        if self.spc.warmup_windows < 2:
            raise QualityConfigError("spc.warmup_windows must be at least 2")
        judge = self.judge
        url = urlsplit(judge.base_url)
        if url.scheme not in ("http", "https") or not url.hostname:
            raise QualityConfigError(
                f"judge.base_url must be an http(s) URL such as https://api.openai.com/v1, "
                f"got {judge.base_url!r}"
            )
        if judge.workers < 1 or judge.queue_size < 1 or judge.requests_per_second <= 0:
            raise QualityConfigError(
                "judge.workers, judge.queue_size and judge.requests_per_second must be > 0"
            )
        if (
            not math.isfinite(judge.daily_usd_budget)
            or judge.daily_usd_budget < 0
            or judge.daily_token_budget < 0
        ):
            raise QualityConfigError("judge daily budgets must be >= 0")


def _rename(data: dict[str, Any], old: str, new: str) -> dict[str, Any]:
    data = dict(data)
    if old in data:
        data[new] = data.pop(old)
    return data


def _build(kind: Any, data: dict[str, Any], where: str) -> Any:
    known = {f.name for f in fields(kind)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise QualityConfigError(
            f"{where}: unknown key(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}"
        )
    return kind(**data)


def _rules(spec: dict[str, Any], where: str) -> FeatureRules:
    spec = dict(spec)
    rules = tuple(_build(RegexRule, r, f"{where}.rules") for r in spec.pop("rules", ()))
    return _build(FeatureRules, {**spec, "rules": rules}, where)
