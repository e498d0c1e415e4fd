"""Synthetic series of the processor's engines, the processor itself, the collector and Kafka,
as Prometheus would scrape them every 15 s, for ``bench_alert_delay.py``.

Each generator returns the samples of one unit (a feature, a processor instance, a tool, an
agent, a probe) at the sample times ``ts``: clean noisy behaviour throughout and, when ``at``
is given, a change of stated size from ``at`` on. The same generator makes the clean month
(``at=None``), so an incident and the clean traffic it is measured against differ only in the
change.

Where the processor computes a gauge from what it sees (the SPC charts, the drift similarity
chart), the gauge comes from the processor's own code fed with synthetic window statistics:
``EwmaChart`` with the shipped settings (``QualityCharts`` and ``DriftSettings`` defaults),
exported as it exports them (the last window's state holds until the next window closes).
Where the processor's statistic needs content (the MMD and KS drift tests), the test's outcome
is modelled: see :func:`drift_tests`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from llmpulse.processor.drift.state import DriftSettings, similarity_chart
from llmpulse.processor.quality import metric_names as Q
from llmpulse.processor.quality.charts import QualityCharts
from llmpulse.processor.quality.settings import SpcSettings
from llmpulse.processor.spc.ewma import EwmaChart

__all__ = ["PROCESSOR", "SCENARIOS", "Sample", "Scenario"]

STEP = 15
SERVICE = "bench"
PROCESSOR = "llmpulse-processor"
Sample = tuple[str, dict[str, str], np.ndarray, np.ndarray]
Generator = Callable[[np.ndarray, "int | None", np.random.Generator, str], list[Sample]]


@dataclass(frozen=True)
class Scenario:
    """An incident of stated size for ``alerts``, and the clean unit it is measured against."""

    key: str  # the unit's identifying label value (feature, instance, tool, agent or probe)
    title: str
    alerts: tuple[str, ...]
    make: Generator
    clean: bool = True  # also run as a clean unit for the month (False: the clean LLM features cover it)


def _after(ts: np.ndarray, at: int | None, delay: float = 0.0) -> np.ndarray:
    return np.zeros(len(ts), bool) if at is None else ts > at + delay


def _daily(ts: np.ndarray) -> np.ndarray:
    return 1 + 0.5 * np.sin(2 * np.pi * (ts % 86400) / 86400)


def _minutes(ts: np.ndarray, rng: np.random.Generator, per_day: float, length_min: int) -> np.ndarray:
    """A mask of ``per_day`` random runs of ``length_min`` minutes a day (blips, restarts)."""
    minute = (ts - ts[0]) // 60
    mask = np.zeros(len(ts), bool)
    for start in rng.integers(0, minute[-1] + 1, rng.poisson(per_day * (ts[-1] - ts[0]) / 86400)):
        mask |= (minute >= start) & (minute < start + length_min)
    return mask


def _counter(name: str, labels: dict[str, str], ts: np.ndarray, increments: np.ndarray) -> Sample:
    return name, labels, ts, np.cumsum(increments).astype(float)


def _windows(calls: np.ndarray, size: int) -> np.ndarray:
    """For each sample, the number of windows of ``size`` events closed by then."""
    return np.cumsum(calls) // size


def _gauge_from_windows(closed: np.ndarray, per_window: np.ndarray) -> np.ndarray:
    """The value each sample shows: that of the last closed window (NaN before the first)."""
    shown = np.full(len(closed), math.nan)
    has = closed > 0
    shown[has] = per_window[np.minimum(closed[has], len(per_window)) - 1]
    return shown


def _chart_gauges(
    chart: EwmaChart, labels: dict[str, str], ts: np.ndarray, closed: np.ndarray, points: np.ndarray
) -> list[Sample]:
    """Run ``chart`` over the window ``points`` and export ewma / alarm / in_warmup per sample."""
    ewma = np.empty(len(points))
    alarm = np.empty(len(points))
    warm = np.empty(len(points))
    for i, x in enumerate(points.tolist()):
        state = chart.update(x)
        ewma[i], alarm[i], warm[i] = state.ewma, float(state.alarm), float(state.in_warmup)
    out = []
    for name, values in (("_ewma", ewma), ("_alarm", alarm), ("_in_warmup", warm)):
        shown = _gauge_from_windows(closed, values)
        keep = np.isfinite(shown)  # no window closed yet, or an EWMA not started (warm-up)
        out.append((name, labels, ts[keep], shown[keep]))
    return out


def _proc(key: str, *, own_job: bool = False) -> dict[str, str]:
    """A processor's scrape labels. All units share the ``llmpulse-processor`` job and are told
    apart by ``instance``, except with ``own_job``: the unit is a deployment of its own (job
    ``llmpulse-processor-<key>``), for the alerts judged over all of a job's replicas (no
    ``instance``), which would otherwise sum every unit of the benchmark into one."""
    job = f"{PROCESSOR}-{key}" if own_job else PROCESSOR
    return {"job": job, "instance": f"{key}:9464"}


# --- quality engine -----------------------------------------------------------------------
def spc_and_judge(ts: np.ndarray, at: int | None, rng: np.random.Generator, key: str) -> list[Sample]:
    """A feature at 2.5 calls/s, 10% judged: the SPC charts of its error rate, p95 latency, cost
    and judge score (real ``EwmaChart``, shipped settings and minimum effects) and the judge
    score summary. Incident: the mean judge score falls from 4.2 to 3.4 (sd 0.8 per verdict)."""
    charts = QualityCharts(SpcSettings())
    labels = {**_proc(key), "service": SERVICE, "feature": key}
    daily = _daily(ts)
    calls = rng.poisson(2.5 * STEP * daily)
    verdicts = rng.binomial(calls, 0.1)
    after = _after(ts, at)
    out: list[Sample] = []
    # judge score: the mean of each window of 20 verdicts; the summary's sum and count
    mean = np.where(after, 3.4, 4.2)
    score_sum = np.array(
        [rng.normal(m, 0.8, v).clip(1, 5).sum() for m, v in zip(mean, verdicts, strict=True)]
    )
    dim = {"service": SERVICE, "feature": key, "dimension": "correctness", **_proc(key)}
    out.append(_counter("llmpulse_judge_score_sum", dim, ts, score_sum))
    out.append(_counter("llmpulse_judge_score_count", dim, ts, verdicts))
    size = charts.settings.scores_per_window
    closed = _windows(verdicts, size)
    sample_of_window = np.searchsorted(np.cumsum(verdicts), size * np.arange(1, closed[-1] + 1))
    points = rng.normal(mean[sample_of_window], 0.8 / math.sqrt(size))
    stat = Q.STAT_JUDGE_SCORE
    out += _named(
        _chart_gauges(charts.chart(SERVICE, key, stat), {**labels, "statistic": stat}, ts, closed, points)
    )
    # the call statistics: one point per 100 calls (clean throughout: the incident is the score)
    size = charts.window_size(key)
    closed = _windows(calls, size)
    n = int(closed[-1])
    blip = _minutes(ts, rng, 2, 1)[
        np.searchsorted(np.cumsum(calls), size * np.arange(1, n + 1)).clip(0, len(ts) - 1)
    ]
    stats = {
        Q.STAT_ERROR_RATE: rng.binomial(size, np.where(blip, 0.10, 0.0002)) / size,
        Q.STAT_LATENCY_P95: np.quantile(rng.lognormal(math.log(1.5), 0.6, (n, size)), 0.95, axis=1),
        Q.STAT_COST: rng.lognormal(math.log(0.002), 0.3, (n, size)).mean(axis=1),
    }
    for stat, points in stats.items():
        out += _named(
            _chart_gauges(charts.chart(SERVICE, key, stat), {**labels, "statistic": stat}, ts, closed, points)
        )
    return out


def _named(samples: list[Sample], prefix: str = "llmpulse_spc") -> list[Sample]:
    return [(prefix + name, labels, t, v) for name, labels, t, v in samples]


def survivorship(ts: np.ndarray, at: int | None, rng: np.random.Generator, key: str) -> list[Sample]:
    """Per-call user signals over the processor's rolling hour (1-minute buckets): the risk
    gauge as ``UserSignals`` computes it. Clean: 5% of answers abandoned, 25% with explicit
    feedback, 75% of it positive. Incident (the demo's): 55% abandoned, 10% feedback, 95% happy."""
    calls = rng.poisson(2.5 * STEP * _daily(ts))
    after = _after(ts, at)
    abandoned = rng.binomial(calls, np.where(after, 0.55, 0.05))
    explicit = rng.binomial(calls, np.where(after, 0.10, 0.25))
    positive = rng.binomial(explicit, np.where(after, 0.95, 0.75))
    hour = 3600 // STEP

    def rolling(x: np.ndarray) -> np.ndarray:
        c = np.cumsum(x)
        return c - np.concatenate([np.zeros(hour), c[:-hour]])

    r, a, e, p = (rolling(x).astype(float) for x in (calls, abandoned, explicit, positive))
    with np.errstate(invalid="ignore", divide="ignore"):
        risk = (
            np.minimum(1, a / r / 0.3)
            * np.minimum(1, np.where(e > 0, p / e, 0) / 0.8)
            * np.clip((1 - e / r) / 0.8, 0, 1)
        )
    labels = {"service": SERVICE, "feature": key}
    req = {**labels, "provider": "openai", "model": "gpt-4o", "outcome": "ok"}
    return [
        ("llmpulse_user_survivorship_risk", {**_proc(key), **labels}, ts, np.nan_to_num(risk)),
        _counter("llmpulse_requests_total", req, ts, calls),
    ]


def canary(ts: np.ndarray, at: int | None, rng: np.random.Generator, key: str) -> list[Sample]:
    """A canary probe run every 5 minutes; 1% of runs fail by chance (a flaky answer). Incident:
    the model answers the probe wrongly from ``at`` on."""
    run = (ts - ts[0]) // 300
    runs = int(run[-1]) + 1
    run_at = ts[0] + 300 * np.arange(runs)
    passed = (rng.random(runs) >= 0.01) & ~_after(run_at, at)
    return [
        (
            "llmpulse_canary_pass",
            {**_proc(key), "probe": key, "model": "gpt-4o"},
            ts,
            passed[run].astype(float),
        )
    ]


def judge(mode: str) -> Generator:
    """The judge's counters: 0.25 judge calls/s (10% of 2.5 calls/s). Clean: 1% of judge calls
    time out, a 2-minute endpoint hiccup (all HTTP errors) once a day, 5% of the chosen calls
    dropped on a full queue in the busiest minutes. Incidents: ``failing`` 50% HTTP errors,
    ``lagging`` 40% of the chosen calls dropped (queue full), ``budget`` the daily budget spent."""

    def make(ts: np.ndarray, at: int | None, rng: np.random.Generator, key: str) -> list[Sample]:
        after = _after(ts, at)
        sampled = rng.poisson(0.25 * STEP * _daily(ts))
        peak = (_daily(ts) > 1.45) & _minutes(ts, rng, 6, 10)
        drop_q = rng.binomial(sampled, np.where(after & (mode == "lagging"), 0.40, np.where(peak, 0.05, 0)))
        drop_b = np.where(after & (mode == "budget"), sampled - drop_q, 0)
        sent = sampled - drop_q - drop_b
        hiccup = _minutes(ts, rng, 1, 2)
        http = rng.binomial(sent, np.where(after & (mode == "failing"), 0.5, np.where(hiccup, 1.0, 0)))
        timeout = rng.binomial(sent - http, 0.01)
        proc = _proc(key, own_job=mode == "budget")  # the budget is judged per job
        return [
            _counter("llmpulse_judge_sampled_total", proc, ts, sampled),
            _counter("llmpulse_judge_dropped_total", {**proc, "reason": "queue_full"}, ts, drop_q),
            _counter("llmpulse_judge_dropped_total", {**proc, "reason": "budget"}, ts, drop_b),
            _counter("llmpulse_judge_errors_total", {**proc, "reason": "http"}, ts, http),
            _counter("llmpulse_judge_errors_total", {**proc, "reason": "timeout"}, ts, timeout),
            _counter("llmpulse_judge_verdicts_total", proc, ts, sent - http - timeout),
        ]

    return make


# --- drift engine -------------------------------------------------------------------------
def drift_similarity(ts: np.ndarray, at: int | None, rng: np.random.Generator, key: str) -> list[Sample]:
    """The similarity chart (the drift engine's ``similarity_chart``: ``DriftSettings`` defaults and
    its minimum effect) on blocks of 20 sampled prompts at 0.25 prompts/s; a prompt's similarity
    to the centroid is N(0.55, 0.08). Incident: 30% of the prompts on a new topic (similarity
    N(0.25, 0.08))."""
    chart = similarity_chart(DriftSettings())
    prompts = rng.poisson(0.25 * STEP * _daily(ts))
    size = 20
    closed = _windows(prompts, size)
    at_sample = np.searchsorted(np.cumsum(prompts), size * np.arange(1, closed[-1] + 1))
    shifted = _after(ts, at)[at_sample.clip(0, len(ts) - 1)]
    new = rng.binomial(size, np.where(shifted, 0.3, 0.0))
    points = (new * 0.25 + (size - new) * 0.55) / size + rng.normal(0, 0.08 / math.sqrt(size), len(new))
    labels = {**_proc(key), "service": SERVICE, "feature": key}
    return [
        s_
        for s_ in _named(_chart_gauges(chart, labels, ts, closed, points), "llmpulse_drift_similarity")
        if "warmup" not in s_[0]
    ]


def drift_tests(signal: str) -> Generator:
    """The two-sample test of ``signal`` (window 200 samples, a test every 50, alpha 0.01) at
    0.25 sampled calls/s, modelled: a test's z statistic is the sum of its window's four blocks
    of 50 (each N(0, 1) in control) over 2, so consecutive tests share 3/4 of their samples as
    the engine's do; a drifted block adds 3 (a 30% topic or length shift: bench_drift.py
    measures power 100% at window 200), so a test rejects once half its window has drifted.
    Exported as the engine does: p-value, drifted flag, effect size, tests counter."""

    def make(ts: np.ndarray, at: int | None, rng: np.random.Generator, key: str) -> list[Sample]:
        samples = rng.poisson(0.25 * STEP * _daily(ts))
        closed = _windows(samples, 50)
        n = int(closed[-1])
        block_at = np.searchsorted(np.cumsum(samples), 50 * np.arange(1, n + 1)).clip(0, len(ts) - 1)
        z_block = rng.normal(0, 1, n) + 3.0 * _after(ts, at)[block_at]
        z = np.convolve(z_block, np.ones(4), mode="full")[:n] / 2
        p = 0.5 * np.array([math.erfc(v / math.sqrt(2)) for v in z.tolist()])
        flag = (p < 0.01).astype(float)
        effect = 0.05 + 0.25 * np.clip(z / 6, 0, 1)
        labels = {**_proc(key), "service": SERVICE, "feature": key, "signal": signal}
        keep = closed > 0
        out = [
            (name, labels, ts[keep], _gauge_from_windows(closed, values)[keep])
            for name, values in (
                ("llmpulse_drift_p_value", p),
                ("llmpulse_drift_drifted", flag),
                ("llmpulse_drift_score", effect),
            )
        ]
        out.append(("llmpulse_drift_tests_total", labels, ts, closed.astype(float)))
        return out

    return make


# --- agents and sessions ------------------------------------------------------------------
def tool(ts: np.ndarray, at: int | None, rng: np.random.Generator, key: str) -> list[Sample]:
    """A tool at 0.5 calls/s failing 3% of calls, with two one-minute blips of 50% a day.
    Incident: 40% of its calls fail."""
    calls = rng.poisson(0.5 * STEP * _daily(ts))
    share = np.where(_after(ts, at), 0.40, np.where(_minutes(ts, rng, 2, 1), 0.5, 0.03))
    labels = {"service": SERVICE, "tool": key}
    return [
        _counter("llmpulse_tool_calls_total", labels, ts, calls),
        _counter("llmpulse_tool_errors_total", labels, ts, rng.binomial(calls, share)),
    ]


def agent(mode: str) -> Generator:
    """An agent at 0.05 runs/s, 2% of runs ending in an error, no runaway run. Incidents:
    ``errors`` 30% of runs fail; ``runaway`` one run over its cap every 10 minutes. Runs are
    counted after their 2 s grace."""

    def make(ts: np.ndarray, at: int | None, rng: np.random.Generator, key: str) -> list[Sample]:
        after = _after(ts, at, 2)
        runs = rng.poisson(0.05 * STEP * _daily(ts))
        errors = rng.binomial(runs, np.where(after & (mode == "errors"), 0.30, 0.02))
        labels = {"service": SERVICE, "agent": key}
        out = [
            _counter("llmpulse_agent_runs_total", {**labels, "outcome": "ok"}, ts, runs - errors),
            _counter("llmpulse_agent_runs_total", {**labels, "outcome": "error"}, ts, errors),
        ]
        runaway = np.zeros(len(ts))
        if at is not None and mode == "runaway":
            first = np.argmax(after)
            runaway[first :: 600 // STEP] = 1
        out.append(
            _counter("llmpulse_agent_runaway_runs_total", {**labels, "reason": "max_llm_calls"}, ts, runaway)
        )
        return out

    return make


def sessions(mode: str) -> Generator:
    """Closed sessions of a conversational feature at 0.05/s (180 an hour): 15% abandoned after
    the first answer, 8% with a correction, 10% with feedback, 70% of it positive. A session is
    counted 3 minutes after its last call (the inactivity timeout), so the change shows from
    ``at`` + 3 min. Incidents: ``abandonment`` (the demo's) 55% abandoned, the 10% who rate are
    95% happy; ``corrections`` 35% with a correction."""

    def make(ts: np.ndarray, at: int | None, rng: np.random.Generator, key: str) -> list[Sample]:
        after = _after(ts, at, 180)
        n = rng.poisson(0.05 * STEP * _daily(ts))
        abandon = mode == "abandonment"
        shares = {
            "abandoned": np.where(after & abandon, 0.55, 0.15),
            "corrected": np.where(after & (mode == "corrections"), 0.35, 0.08),
            "followed_up": np.where(after & abandon, 0.40, 0.80),
            "with_feedback": np.full(len(ts), 0.10),
        }
        counts = {k: rng.binomial(n, v) for k, v in shares.items()}
        counts["feedback_positive"] = rng.binomial(
            counts["with_feedback"], np.where(after & abandon, 0.95, 0.70)
        )
        labels = {"service": SERVICE, "feature": key}
        out = [_counter("llmpulse_sessions_total", labels, ts, n)]
        out += [_counter(f"llmpulse_sessions_{k}_total", labels, ts, v) for k, v in counts.items()]
        return out

    return make


# --- the pipeline: processor, collector, Kafka --------------------------------------------
def up(job: str) -> Generator:
    """``up`` of a scrape target: four failed scrapes a day and a 45 s restart (a deploy) once
    a day. Incident: the process dies."""

    def make(ts: np.ndarray, at: int | None, rng: np.random.Generator, key: str) -> list[Sample]:
        down = _after(ts, at) | (rng.random(len(ts)) < 4 / 5760) | _minutes(ts, rng, 1, 1)
        # a processor of its own job: its death is also the job's (LLMPulseMonitoringDown)
        labels = _proc(key, own_job=True) if job == PROCESSOR else {"job": job, "instance": f"{key}:8888"}
        return [("up", labels, ts, (~down).astype(float))]

    return make


def processor(mode: str) -> Generator:
    """The processor's own counters: ~20 spans/s received, 0.2% rejected (invalid_tokens), an
    export request refused (queue_full) in a 2-minute peak three times a day. Incidents:
    ``stalled`` nothing arrives; ``rejecting`` 5% of spans rejected; ``refusing`` 2 refused
    requests/s (the queue stays full)."""

    def make(ts: np.ndarray, at: int | None, rng: np.random.Generator, key: str) -> list[Sample]:
        after = _after(ts, at)
        spans = np.where(after & (mode == "stalled"), 0, rng.poisson(20 * STEP * _daily(ts)))
        rejected = rng.binomial(spans, np.where(after & (mode == "rejecting"), 0.05, 0.002))
        peak = _minutes(ts, rng, 3, 2)
        refused = rng.poisson(np.where(after & (mode == "refusing"), 2 * STEP, np.where(peak, 0.5 * STEP, 0)))
        proc = _proc(key, own_job=mode == "stalled")  # a stall is judged per job
        return [
            _counter("llmpulse_processor_spans_received_total", proc, ts, spans),
            _counter(
                "llmpulse_processor_spans_rejected_total", {**proc, "reason": "invalid_tokens"}, ts, rejected
            ),
            _counter(
                "llmpulse_processor_requests_refused_total",
                {**proc, "receiver": "grpc", "reason": "queue_full"},
                ts,
                refused,
            ),
        ]

    return make


def collector(mode: str) -> Generator:
    """The collector's exporter and receiver: no span dropped (any drop is a loss), the memory
    limiter refusing for a minute twice a day, the sending queue (capacity 1,000 batches) at
    ~20 with a 2-minute surge to 60% once a day. Incidents: ``dropping`` 50 spans/s fail to
    send; ``refusing`` the receiver refuses 100 spans/s; ``queue`` the processor stops taking
    batches and the queue grows by 1 a second."""

    def make(ts: np.ndarray, at: int | None, rng: np.random.Generator, key: str) -> list[Sample]:
        after = _after(ts, at)
        base = {"job": "otel-collector", "instance": f"{key}:8888"}
        exp = {**base, "exporter": "otlp"}
        failed = rng.poisson(np.where(after & (mode == "dropping"), 50 * STEP, 0))
        limiter = _minutes(ts, rng, 2, 1)
        refused = rng.poisson(
            np.where(after & (mode == "refusing"), 100 * STEP, np.where(limiter, 100 * STEP, 0))
        )
        queue = rng.poisson(20, len(ts)).astype(float)
        queue[_minutes(ts, rng, 1, 2)] = 600
        if at is not None and mode == "queue":
            queue = np.where(after, np.minimum(1000, 20 + (ts - at)), queue)
        return [
            _counter("otelcol_exporter_send_failed_spans", exp, ts, failed),
            _counter("otelcol_exporter_enqueue_failed_spans", exp, ts, np.zeros(len(ts))),
            _counter(
                "otelcol_receiver_refused_spans",
                {**base, "receiver": "otlp", "transport": "grpc"},
                ts,
                refused,
            ),
            ("otelcol_exporter_queue_size", exp, ts, queue),
            ("otelcol_exporter_queue_capacity", exp, ts, np.full(len(ts), 1000.0)),
        ]

    return make


def kafka_lag(ts: np.ndarray, at: int | None, rng: np.random.Generator, key: str) -> list[Sample]:
    """A replica's lag on its partitions: ~500 records with noise, and a rebalance once a day
    (the lag jumps to 20,000 and drains in 5 minutes). Incident: the replica stops consuming
    while 20 records/s arrive."""
    lag = np.abs(rng.normal(500, 200, len(ts)))
    minute = (ts - ts[0]) // 60
    for start in rng.integers(0, minute[-1] + 1, rng.poisson((ts[-1] - ts[0]) / 86400)):
        m = (minute >= start) & (minute < start + 5)
        lag[m] = 20000 * (1 - (minute[m] - start) / 5) + lag[m]
    if at is not None:
        lag = np.where(_after(ts, at), 500 + 20 * (ts - at), lag)
    return [("llmpulse_kafka_consumer_lag_records", {**_proc(key), "topic": "otlp_spans"}, ts, lag)]


SCENARIOS: tuple[Scenario, ...] = (
    Scenario(
        "judge-drop",
        "judge score 4.2 -> 3.4 (10% of 2.5 calls/s judged)",
        ("LLMPulseQualitySPCAlarm", "LLMPulseQualityScoreDrop"),
        spc_and_judge,
    ),
    Scenario(
        "survivors",
        "55% abandon, the 10% who rate are 95% happy",
        ("LLMPulseSurvivorshipBiasRisk",),
        survivorship,
    ),
    Scenario("canary", "the model answers a canary probe wrongly", ("LLMPulseCanaryFailing",), canary),
    Scenario("judge-failing", "50% of judge calls HTTP errors", ("LLMPulseJudgeFailing",), judge("failing")),
    Scenario(
        "judge-lagging",
        "40% of chosen calls dropped (queue full)",
        ("LLMPulseJudgeLagging",),
        judge("lagging"),
    ),
    Scenario(
        "judge-budget", "the judge's daily budget spent", ("LLMPulseJudgeBudgetExhausted",), judge("budget")
    ),
    Scenario(
        "topic-shift", "30% of prompts on a new topic", ("LLMPulseInputSimilarityDrop",), drift_similarity
    ),
    Scenario(
        "input-drift", "input drift (30% shift, window 200)", ("LLMPulseInputDrift",), drift_tests("input")
    ),
    Scenario(
        "length-drift",
        "response length drift (30% shift)",
        ("LLMPulseOutputDrift",),
        drift_tests("response_length"),
    ),
    Scenario("tool", "40% of a tool's calls fail", ("LLMPulseToolErrorRateHigh",), tool),
    Scenario(
        "agent-errors", "30% of an agent's runs fail", ("LLMPulseAgentRunErrorRateHigh",), agent("errors")
    ),
    Scenario(
        "agent-runaway",
        "a run over its LLM-call cap every 10 min",
        ("LLMPulseAgentRunaway",),
        agent("runaway"),
    ),
    Scenario(
        "abandon",
        "sessions: 55% abandoned, raters 95% happy (the demo's)",
        ("LLMPulseSessionAbandonmentHigh", "LLMPulseSessionSurvivorshipBiasRisk"),
        sessions("abandonment"),
    ),
    Scenario(
        "corrections",
        "sessions with a correction 8% -> 35%",
        ("LLMPulseSessionCorrectionRateHigh",),
        sessions("corrections"),
    ),
    Scenario(
        "proc-down",
        "the processor dies",
        ("LLMPulseProcessorDown", "LLMPulseMonitoringDown"),
        up(PROCESSOR),
    ),
    Scenario(
        "stalled", "no span arrives (20 spans/s before)", ("LLMPulseIngestStalled",), processor("stalled")
    ),
    Scenario(
        "rejecting",
        "5% of spans rejected (invalid_tokens)",
        ("LLMPulseRejectingSpans",),
        processor("rejecting"),
    ),
    Scenario(
        "refusing",
        "2 export requests/s refused (queue_full)",
        ("LLMPulseExportsRefused",),
        processor("refusing"),
    ),
    Scenario("coll-down", "the collector dies", ("LLMPulseCollectorDown",), up("otel-collector")),
    Scenario(
        "coll-drop", "50 spans/s fail to export", ("LLMPulseCollectorDroppingSpans",), collector("dropping")
    ),
    Scenario(
        "coll-refuse",
        "the receiver refuses 100 spans/s",
        ("LLMPulseCollectorRefusingSpans",),
        collector("refusing"),
    ),
    Scenario(
        "coll-queue",
        "the sending queue grows 1 batch/s",
        ("LLMPulseCollectorQueueFilling",),
        collector("queue"),
    ),
    Scenario(
        "kafka", "a replica stops consuming (20 records/s)", ("LLMPulseKafkaConsumerLagHigh",), kafka_lag
    ),
)
