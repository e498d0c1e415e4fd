"""The committed dashboard JSON is what dashboards/ builds, and the dashboards are wired right."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from llmpulse.console.health import QUERIES as CONSOLE_QUERIES
from llmpulse.processor.metrics import names as M
from llmpulse.processor.quality import metric_names as Q
from llmpulse.stack import components
from tests.stack.replica_queries import split_by_replica

REPO = components.REPO_ROOT
LLM_DASHBOARDS = ("llmpulse-overview", "llmpulse-model-versions")
CANARY_PREFIX = "llmpulse_canary_"
ENGINE_DASHBOARDS = ("llmpulse-quality", "llmpulse-drift")


def _build(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dashboards.build", *args], capture_output=True, text=True, cwd=REPO
    )


def test_generated_json_is_what_the_build_writes() -> None:
    result = _build("--check")
    assert result.returncode == 0, (
        "dashboards/generated/ is stale; run `python -m dashboards.build` and commit:\n" + result.stderr
    )


def test_the_check_fails_on_a_hand_edit(tmp_path: Path) -> None:
    out = tmp_path / "generated"
    shutil.copytree(REPO / "dashboards" / "generated", out)
    edited = out / "llmpulse-overview.json"
    edited.write_text(edited.read_text().replace('"llmpulse / Overview"', '"edited by hand"'))
    result = _build("--check", "--out", str(out))
    assert result.returncode == 1
    assert "llmpulse-overview.json: differs" in result.stderr
    assert _build("--out", str(out)).returncode == 0
    assert _build("--check", "--out", str(out)).returncode == 0


def test_every_dashboard_has_the_datasource_variable_and_uses_it(dashboards: dict[str, Any]) -> None:
    for uid, board in dashboards.items():
        variables = {v["name"]: v for v in board["templating"]["list"]}
        assert variables["datasource"]["type"] == "datasource", uid
        assert variables["datasource"]["query"] == "prometheus", uid
        panels = [p for p in board["panels"] if p["type"] != "row"]
        assert panels, uid
        for panel in panels:
            assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, (
                uid,
                panel["title"],
            )
        ids = [p["id"] for p in board["panels"]]
        assert len(set(ids)) == len(ids), f"{uid}: duplicate panel ids"


def test_per_call_dashboards_filter_on_feature_provider_model(
    dashboards: dict[str, Any], dashboard_queries: list[Any]
) -> None:
    for uid in LLM_DASHBOARDS:
        names = [v["name"] for v in dashboards[uid]["templating"]["list"]]
        assert names == ["datasource", "service", "feature", "provider", "model"], uid
        for query in (q for q in dashboard_queries if q.dashboard == uid):
            if CANARY_PREFIX in query.expr:  # probes carry probe and model, no feature
                assert '"$model"' in query.expr, query
            else:
                assert '"$feature"' in query.expr or "unpriced_ratio" in query.expr, query
                assert '"$service"' in query.expr, query


def test_dashboards_of_span_metrics_filter_on_service(
    dashboards: dict[str, Any], dashboard_queries: list[Any]
) -> None:
    """Two services with a feature of the same name are told apart on every span-derived panel."""
    span_metrics = tuple(spec.name for spec in M.METRICS if M.SERVICE in spec.labels)
    checked = 0
    for query in dashboard_queries:
        if any(name in query.expr for name in span_metrics) or "feature_model" in query.expr:
            variables = [v["name"] for v in dashboards[query.dashboard]["templating"]["list"]]
            assert "service" in variables, query.dashboard
            assert '"$service"' in query.expr, query
            checked += 1
    assert checked > 30


def test_step_latency_panels_ask_for_exemplars(dashboard_queries: list[Any]) -> None:
    step_latency = [q for q in dashboard_queries if "llmpulse_step_duration_seconds_bucket" in q.expr]
    assert step_latency
    assert any(q.exemplar for q in step_latency)
    assert any(q.exemplar and q.dashboard == "llmpulse-overview" for q in dashboard_queries)


def test_engine_dashboards_filter_on_service_and_feature(
    dashboards: dict[str, Any], dashboard_queries: list[Any]
) -> None:
    """Quality and drift panels follow $service and $feature (two services with a feature of the
    same name are told apart), except the per-processor series without either."""
    unfiltered = {
        "llmpulse_quality_flagged_store_dropped_total",
        "llmpulse_quality_flagged_stored_total",
        "llmpulse_judge_cost_usd_total",
        "llmpulse_judge_tokens_total",
        "llmpulse_judge_queue_samples",
        "llmpulse_judge_circuit_open",
        "llmpulse_judge_info",
        "llmpulse_drift_samples_dropped_total",
        "llmpulse_drift_queue_samples",
        "llmpulse_drift_embed_seconds_bucket",
    }
    for uid in ENGINE_DASHBOARDS:
        names = [v["name"] for v in dashboards[uid]["templating"]["list"]][:3]
        assert names == ["datasource", "service", "feature"], uid
        queries = [q for q in dashboard_queries if q.dashboard == uid]
        assert queries, uid
        for query in queries:
            filtered = '"$feature"' in query.expr and '"$service"' in query.expr
            assert filtered or any(name in query.expr for name in unfiltered), query


def test_the_replica_check_finds_a_per_key_series_kept_per_instance() -> None:
    """The check below can fail: raw gauges, ``by (instance, ...)`` and a function alone keep
    ``instance``; ``max by (service, feature)``, ``sum(...)`` and ``without (instance)`` drop it."""
    assert split_by_replica('llmpulse_spc_ewma{service=~"$service"}') == [Q.SPC_EWMA]
    assert split_by_replica(f"max by (instance, feature) ({Q.SPC_EWMA})") == [Q.SPC_EWMA]
    assert split_by_replica(f"time() - {Q.CANARY_LAST_RUN}") == [Q.CANARY_LAST_RUN]
    assert split_by_replica(f"rate({M.REQUESTS_TOTAL}[5m])") == [M.REQUESTS_TOTAL]
    assert split_by_replica(f"max by (service, feature) ({Q.SPC_EWMA}) > 0") == []
    assert split_by_replica(f'sum(rate({M.REQUESTS_TOTAL}{{feature=~"a(b)"}}[5m]))') == []
    assert split_by_replica(f"max without (instance, pod) ({Q.CANARY_PASS})") == []
    assert (
        split_by_replica(f"histogram_quantile(0.9, sum by (le) (rate({M.OPERATION_DURATION}_bucket[5m])))")
        == []
    )
    assert split_by_replica(f"max by (instance) ({Q.JUDGE_QUEUE_SAMPLES})") == []  # per replica, not per key


def test_per_key_series_are_read_without_the_replica_instance(
    dashboard_queries: list[Any], rule_groups: list[dict[str, Any]]
) -> None:
    """With several processor replicas every panel, every recording rule and the console's home
    page show one series per (service, feature) or probe, whichever replica exports it."""
    split = [f"{q}  <- {', '.join(names)}" for q in dashboard_queries if (names := split_by_replica(q.expr))]
    rules = [
        f"{rule['record']}: {', '.join(names)}"
        for group in rule_groups
        for rule in group["rules"]
        if "record" in rule and (names := split_by_replica(rule["expr"]))
    ]
    console = [f"console home {name}: {q}" for name, q in CONSOLE_QUERIES.items() if split_by_replica(q)]
    assert not split + rules + console, "per-key series kept per replica instance:\n" + "\n".join(
        split + rules + console
    )
