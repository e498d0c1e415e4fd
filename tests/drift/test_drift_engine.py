"""The drift engine end to end on synthetic prompt streams: detection, stability, metrics, memory."""

from __future__ import annotations

import asyncio
import dataclasses
import math
from collections.abc import Callable, Sequence

import numpy as np
import pytest
from prometheus_client import CollectorRegistry

from llmpulse.contract.attributes import UNKNOWN_SERVICE
from llmpulse.processor.drift import metric_names as names
from llmpulse.processor.drift.embedders import (
    EmbedderBudgetExhausted,
    EmbedderUnavailable,
    HashedNgramEmbedder,
)
from llmpulse.processor.drift.engine import DriftEngine, DriftSample, DriftSettings, UnknownFeature
from llmpulse.processor.drift.synthetic import SyntheticCall, SyntheticStream
from llmpulse.processor.spc.ewma import ChartState
from llmpulse.testing.polling import wait_until_async

FROZEN_AT = 1_700_000_000.0
Feed = Callable[..., None]  # the `feed` fixture: feed(stream, n, feature=..., **call_kwargs)


def to_sample(call: SyntheticCall, feature: str = "support") -> DriftSample:
    return DriftSample(feature, call.text, call.response_length, call.finish_reason, 0.0)


def value(registry: CollectorRegistry, name: str, **labels: str) -> float | None:
    if "feature" in labels:  # the samples here come from the default service
        labels = {"service": UNKNOWN_SERVICE, **labels}
    return registry.get_sample_value(name, labels)


def test_stable_stream_is_not_flagged(engine: DriftEngine, registry: CollectorRegistry, feed: Feed) -> None:
    stream = SyntheticStream(1)
    feed(stream, 200)  # the reference
    assert value(registry, names.DRIFT_REFERENCE_SAMPLES, feature="support") == 200
    assert value(registry, names.DRIFT_TESTS_TOTAL, feature="support", signal="input") == 0
    feed(stream, 200)  # tests after 100, 150 and 200 current samples
    for signal in names.SIGNALS:
        assert value(registry, names.DRIFT_TESTS_TOTAL, feature="support", signal=signal) == 3
        assert value(registry, names.DRIFT_DRIFTED, feature="support", signal=signal) == 0
        p = value(registry, names.DRIFT_P_VALUE, feature="support", signal=signal)
        assert p is not None and p > 0.05
    assert value(registry, names.DRIFT_SIMILARITY_ALARM, feature="support") == 0


def test_topic_shift_is_detected_with_exact_metrics(
    engine: DriftEngine, registry: CollectorRegistry, feed: Feed
) -> None:
    stream = SyntheticStream(2)
    feed(stream, 200)
    feed(stream, 200, shift=0.3)
    # No permutation reaches the observed MMD: the smallest p-value 199 permutations can give.
    assert value(registry, names.DRIFT_P_VALUE, feature="support", signal="input") == pytest.approx(1 / 200)
    assert value(registry, names.DRIFT_DRIFTED, feature="support", signal="input") == 1
    # Same answer lengths and finish reasons: the output side stays quiet.
    assert value(registry, names.DRIFT_DRIFTED, feature="support", signal="response_length") == 0
    status = engine.status("support")
    assert status["tests"]["input"]["drifted"] is True
    assert (
        value(registry, names.DRIFT_SCORE, feature="support", signal="input")
        == status["tests"]["input"]["score"]
    )
    assert status["tests"]["input"]["score"] > 0
    # Window and reference bookkeeping, exactly.
    assert value(registry, names.DRIFT_SAMPLES_TOTAL, feature="support") == 400
    assert value(registry, names.DRIFT_WINDOW_SAMPLES, feature="support") == 200
    assert value(registry, names.DRIFT_REFERENCE_FROZEN_TIMESTAMP, feature="support") == FROZEN_AT
    assert value(registry, names.DRIFT_SIMILARITY + "_count", feature="support") == 200
    assert value(registry, names.DRIFT_SIMILARITY_MEAN, feature="support") == pytest.approx(
        status["similarity_mean"]
    )
    assert value(registry, names.DRIFT_QUEUE_SAMPLES) == 0


def test_similarity_histogram_holds_the_cosine_to_the_reference_centroid(registry: CollectorRegistry) -> None:
    settings = DriftSettings(reference_size=2, window_size=4, min_current=2, test_every=2, permutations=19)
    engine = DriftEngine(registry=registry, settings=settings, embedder=_FixedEmbedder())
    for text in ("a", "b", "a"):
        engine.observe(DriftSample("f", text))
    engine.run_once()
    # centroid = mean((1,0), (0,1)) = (0.5, 0.5); cos((1,0), centroid) = 1/sqrt(2)
    assert value(registry, names.DRIFT_SIMILARITY + "_sum", feature="f") == pytest.approx(1 / math.sqrt(2))
    assert value(registry, names.DRIFT_SIMILARITY_MEAN, feature="f") == pytest.approx(1 / math.sqrt(2))
    assert value(registry, names.DRIFT_SIMILARITY + "_bucket", feature="f", le="0.7") == 0
    assert value(registry, names.DRIFT_SIMILARITY + "_bucket", feature="f", le="0.8") == 1


def test_similarity_chart_alarms_on_a_shift(registry: CollectorRegistry, settings: DriftSettings) -> None:
    charted: list[tuple[str, ChartState]] = []
    settings = dataclasses.replace(settings, spc_warmup=20)  # limits widened for the short warm-up
    engine = DriftEngine(
        registry=registry, settings=settings, chart_listener=lambda f, state: charted.append((f, state))
    )
    stream = SyntheticStream(3)

    def feed(n: int, shift: float = 0.0) -> None:
        for call in stream.calls(n, shift=shift):
            engine.observe(to_sample(call))
        engine.run_once()

    feed(200)
    feed(400)  # twenty blocks of 20: the chart's warm-up
    centre = value(registry, names.DRIFT_SIMILARITY_CENTRE, feature="support")
    assert centre is not None and not math.isnan(centre)
    assert value(registry, names.DRIFT_SIMILARITY_ALARM, feature="support") == 0
    assert [state.in_warmup for _, state in charted] == [True] * 20
    feed(200, shift=0.5)
    assert value(registry, names.DRIFT_SIMILARITY_ALARM, feature="support") == 1
    ewma = value(registry, names.DRIFT_SIMILARITY_EWMA, feature="support")
    lower = value(registry, names.DRIFT_SIMILARITY_LOWER_LIMIT, feature="support")
    assert ewma is not None and lower is not None and ewma < lower < centre
    assert len(charted) == 30  # one state per block of 20 after the freeze
    assert charted[-1][0] == (UNKNOWN_SERVICE, "support") and charted[-1][1].alarm
    assert charted[-1][1].ewma == ewma


def test_output_side_drift(engine: DriftEngine, registry: CollectorRegistry, feed: Feed) -> None:
    stream = SyntheticStream(4)
    feed(stream, 200)
    calls = stream.calls(200, long_answers=True)
    for i, call in enumerate(calls):
        sample = to_sample(call)
        if i % 3 == 0:  # a third of the answers now stop on the length limit
            sample = DriftSample(sample.feature, sample.text, sample.response_length, "length")
        engine.observe(sample)
    engine.run_once()
    assert value(registry, names.DRIFT_DRIFTED, feature="support", signal="response_length") == 1
    assert value(registry, names.DRIFT_DRIFTED, feature="support", signal="finish_reason") == 1
    assert value(registry, names.DRIFT_DRIFTED, feature="support", signal="input") == 0


def test_refreeze_from_current_accepts_the_new_distribution(
    engine: DriftEngine, registry: CollectorRegistry, feed: Feed
) -> None:
    stream = SyntheticStream(5)
    feed(stream, 200)
    feed(stream, 200, shift=0.5)
    assert value(registry, names.DRIFT_DRIFTED, feature="support", signal="input") == 1
    status = engine.refreeze("support", from_current=True)
    assert status["state"] == "monitoring" and status["tests"] == {} and status["window_samples"] == 0
    assert value(registry, names.DRIFT_DRIFTED, feature="support", signal="input") == 0
    assert math.isnan(value(registry, names.DRIFT_P_VALUE, feature="support", signal="input") or 0.0)
    feed(stream, 200, shift=0.5)
    assert value(registry, names.DRIFT_TESTS_TOTAL, feature="support", signal="input") == 6
    assert value(registry, names.DRIFT_DRIFTED, feature="support", signal="input") == 0


def test_refreeze_collects_a_new_reference(
    engine: DriftEngine, registry: CollectorRegistry, feed: Feed
) -> None:
    stream = SyntheticStream(6)
    feed(stream, 300)
    status = engine.refreeze("support")
    assert status["state"] == "collecting_reference" and status["reference_samples"] == 0
    assert value(registry, names.DRIFT_REFERENCE_SAMPLES, feature="support") == 0
    assert value(registry, names.DRIFT_REFERENCE_FROZEN_TIMESTAMP, feature="support") == 0
    feed(stream, 199, shift=1.0, shift_topic="coding")
    assert engine.status("support")["state"] == "collecting_reference"
    feed(stream, 1, shift=1.0, shift_topic="coding")
    assert value(registry, names.DRIFT_REFERENCE_SAMPLES, feature="support") == 200
    feed(stream, 200, shift=1.0, shift_topic="coding")
    assert value(registry, names.DRIFT_DRIFTED, feature="support", signal="input") == 0


def test_refreeze_errors(engine: DriftEngine, feed: Feed) -> None:
    with pytest.raises(UnknownFeature):
        engine.refreeze("never-seen")
    feed(SyntheticStream(7), 250)
    with pytest.raises(ValueError, match="50 samples in its current window, 100 are needed"):
        engine.refreeze("support", from_current=True)


def test_memory_is_bounded(registry: CollectorRegistry) -> None:
    settings = DriftSettings(permutations=19, max_features=2, max_queue=600)
    embedder = HashedNgramEmbedder(dimensions=64)
    engine = DriftEngine(registry=registry, settings=settings, embedder=embedder)
    stream = SyntheticStream(8)
    for _round in range(5):
        for call in stream.calls(250):
            assert engine.observe(to_sample(call, "a"))
            assert engine.observe(to_sample(call, "b"))
            assert engine.observe(to_sample(call, "c")) is False  # a third feature: over the cap
        accepted = [engine.observe(to_sample(call, "b")) for call in stream.calls(150)]
        assert accepted == [True] * 100 + [False] * 50  # the queue holds 600
        engine.run_once()
    per_feature = (settings.reference_size + settings.window_size) * 64 * 4
    assert engine.memory_bytes() == 2 * per_feature
    assert engine.features() == [(UNKNOWN_SERVICE, "a"), (UNKNOWN_SERVICE, "b")]
    assert value(registry, names.DRIFT_SAMPLES_DROPPED_TOTAL, reason="feature_cap") == 5 * 250
    assert value(registry, names.DRIFT_SAMPLES_DROPPED_TOTAL, reason="queue_full") == 5 * 50
    assert value(registry, names.DRIFT_SAMPLES_TOTAL, feature="a") == 5 * 250
    assert value(registry, names.DRIFT_SAMPLES_TOTAL, feature="b") == 5 * 350


def test_empty_text_and_embedder_failures_are_counted(registry: CollectorRegistry) -> None:
    embedder = _FailingEmbedder()
    engine = DriftEngine(registry=registry, embedder=embedder, settings=DriftSettings(batch_size=2))
    assert engine.observe(DriftSample("f", "   ")) is False
    for text in ("one", "two", "three"):
        engine.observe(DriftSample("f", text))
    embedder.error = EmbedderUnavailable("down")
    assert engine.run_once(max_samples=2) == 0
    embedder.error = EmbedderBudgetExhausted("spent")
    assert engine.run_once(max_samples=1) == 0
    embedder.error = RuntimeError("a bug in the model")
    engine.observe(DriftSample("f", "four"))
    assert engine.run_once(max_samples=1) == 0
    embedder.error = None  # now answers with the wrong number of rows
    engine.observe(DriftSample("f", "five"))
    assert engine.run_once() == 0
    assert value(registry, names.DRIFT_SAMPLES_DROPPED_TOTAL, reason="empty") == 1
    assert value(registry, names.DRIFT_SAMPLES_DROPPED_TOTAL, reason="embed_error") == 2 + 1 + 1
    assert value(registry, names.DRIFT_SAMPLES_DROPPED_TOTAL, reason="budget") == 1
    assert value(registry, names.DRIFT_SAMPLES_TOTAL, feature="f") is None  # no feature state was made


def test_every_series_exists_before_the_first_test(engine: DriftEngine, registry: CollectorRegistry) -> None:
    engine.observe(DriftSample("f", "hello"))
    engine.run_once()
    exposed = {s.name for metric in registry.collect() for s in metric.samples}
    assert {n for n in exposed if not n.endswith("_created")} == names.DRIFT_EXPORTED_SERIES
    assert value(registry, names.DRIFT_DRIFTED, feature="f", signal="finish_reason") == 0
    assert value(registry, names.DRIFT_REFERENCE_SAMPLES, feature="f") == 0


async def test_run_drains_the_queue_in_the_background(
    engine: DriftEngine, registry: CollectorRegistry
) -> None:
    task = asyncio.create_task(engine.run(interval=0.01))
    for call in SyntheticStream(9).calls(30):
        engine.observe(to_sample(call))
    await wait_until_async(
        lambda: value(registry, names.DRIFT_SAMPLES_TOTAL, feature="support") == 30, interval=0.01
    )
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert value(registry, names.DRIFT_SAMPLES_TOTAL, feature="support") == 30
    assert engine.pending == 0


class _FixedEmbedder:
    """'a' -> (1, 0), 'b' -> (0, 1)."""

    name = "fixed"

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        return np.asarray([[1.0, 0.0] if t == "a" else [0.0, 1.0] for t in texts], dtype=np.float32)


class _FailingEmbedder:
    name = "failing"

    def __init__(self) -> None:
        self.error: Exception | None = EmbedderUnavailable("down")

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        if self.error is not None:
            raise self.error
        return np.zeros((len(texts) + 1, 4), dtype=np.float32)
