"""Quality settings from config, and the exported metric names against their single source."""

from __future__ import annotations

import pytest
from prometheus_client.registry import CollectorRegistry

from llmpulse.processor.metrics import names as M
from llmpulse.processor.quality import metric_names as Q
from llmpulse.processor.quality.metrics import QualityMetrics
from llmpulse.processor.quality.settings import QualityConfigError, QualitySettings
from llmpulse.processor.spc.ewma import ChartState


def test_settings_from_a_config_mapping() -> None:
    settings = QualitySettings.from_dict(
        {
            "judge_rate": 0.1,
            "judge": {"base_url": "http://judge:8000/v1", "model": "gpt-4o", "daily_usd_budget": 2.5},
            "spc": {"lambda": 0.05, "L": 2.615, "scores_per_window": 10},
            "features": {
                "billing": {
                    "min_chars": 20,
                    "judge_rate": 0.5,
                    "rules": [{"name": "no_urls", "pattern": "https?://"}],
                }
            },
        }
    )
    assert settings.judge.model == "gpt-4o" and settings.judge.daily_usd_budget == 2.5
    assert settings.spc.lambda_ == 0.05 and settings.spc.L == 2.615
    assert settings.rate_for("billing") == 0.5 and settings.rate_for("search") == 0.1
    assert settings.rules_for("billing").rules[0].name == "no_urls"
    assert settings.rules_for("search").min_chars == 0
    assert settings.tick_s == 15.0 and QualitySettings.from_dict({"tick_s": 1}).tick_s == 1


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"judge": {"modle": "x"}}, "judge: unknown key.*modle"),
        ({"judge_rate": 1.5}, "judge_rate must be between 0 and 1"),
        ({"features": {"f": {"judge_rate": -1}}}, "features.f.judge_rate"),
        ({"features": {"f": {"rules": [{"name": "r", "pattern": "("}]}}}, "regex rule 'r': bad pattern"),
        ({"spc": {"lambda": 0}}, "spc.lambda"),
        ({"judge": {"workers": 0}}, "judge.workers"),
        ({"tick_s": 0}, "tick_s must be a number of seconds > 0"),
    ],
)
def test_bad_config_fails_with_the_key_named(config: dict[str, object], message: str) -> None:
    with pytest.raises(QualityConfigError, match=message):
        QualitySettings.from_dict(config)


def test_every_declared_series_is_exported_and_no_name_clashes_with_the_processor() -> None:
    registry = CollectorRegistry()
    metrics = QualityMetrics(registry)
    metrics.init_feature(("s", "f"))
    metrics.check_failures.labels("s", "f", "empty_output").inc()
    metrics.judge_score.labels("s", "f", "tone").observe(4)
    state = ChartState(1.0, 1.0, 1.0, 2.0, 0.0, False, False, 1)
    metrics.chart(("s", "f"), Q.STAT_ERROR_RATE, state)
    for gauge in metrics.user.values():
        gauge.labels("s", "f").set(0)
    metrics.agreement.labels("s", "f").set(1)
    metrics.labelled.labels("s", "f").set(1)
    metrics.canary_pass.labels("p", "m").set(1)
    metrics.canary_runs.labels("p", "m", "pass").inc()
    metrics.canary_last_run.labels("p", "m").set(1)
    metrics.judge_cost.inc(0)
    metrics.content_age.labels("s", "f").set(0)
    metrics.content_state.labels("s", "f", Q.CONTENT_SEEN).set(1)
    metrics.set_judge("judge-model", "0123456789ab")
    # store_dropped: its reasons are pre-created by QualityMetrics
    exported = {
        s.name for family in registry.collect() for s in family.samples if not s.name.endswith("_created")
    }
    assert exported == Q.QUALITY_EXPORTED_SERIES
    assert not Q.QUALITY_EXPORTED_SERIES & M.EXPORTED_SERIES
    with pytest.raises(ValueError, match="Duplicated timeseries"):
        QualityMetrics(registry)  # a second engine on the same registry is refused, not merged
    for spec in Q.QUALITY_METRICS:
        assert spec.name.startswith("llmpulse_")
        assert spec.type != "counter" or spec.name.endswith("_total")
