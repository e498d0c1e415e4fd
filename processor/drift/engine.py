"""Live input drift per feature: embed sampled prompts off the ingest path and test them continuously.

State is kept per (service, feature): two apps with a feature called ``chat`` drift apart.

The processor hands each sampled call to :meth:`DriftEngine.observe` (cheap: a bounded queue
append). A worker calls :meth:`DriftEngine.run_once` (or awaits :meth:`DriftEngine.run`), which
embeds the queued prompts in batches and, per feature:

1. collects the first ``reference_size`` samples and freezes them as the reference window;
2. keeps a sliding current window of ``window_size`` samples, a slowly updated centroid and each
   prompt's cosine similarity to it (histogram, window mean and an EWMA chart of block means);
3. every ``test_every`` samples runs the two-sample tests reference vs current: MMD with an RBF
   kernel and a permutation p-value on the embeddings, KS on response lengths, chi-square on
   the finish-reason mix, and exports score, p-value and drifted flag per signal.

After an intended change, :meth:`DriftEngine.refreeze` starts a new reference. Example::

    engine = DriftEngine(registry=registry)
    engine.observe(DriftSample("support", "How do I reset my password?", 120, "stop"))
    engine.run_once()
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import threading
import time
import zlib
from collections import deque
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Any

import numpy as np
from prometheus_client import CollectorRegistry

from llmpulse.contract.attributes import UNKNOWN_SERVICE
from llmpulse.processor.drift import metric_names as names
from llmpulse.processor.drift.embedders import (
    Embedder,
    EmbedderBudgetExhausted,
    EmbedderError,
    HashedNgramEmbedder,
)
from llmpulse.processor.drift.metrics import DriftMetrics
from llmpulse.processor.drift.persist import (
    decode_references,
    encode_reference,
    read_references,
    write_references,
)
from llmpulse.processor.drift.state import DriftSettings, FeatureDrift
from llmpulse.processor.metrics.names import SAVE_REFUSED_STALE_OWNER
from llmpulse.processor.spc.ewma import ChartState
from llmpulse.processor.store.protocols import DriftReferences

__all__ = ["AmbiguousFeature", "DriftEngine", "DriftSample", "DriftSettings", "UnknownFeature"]

logger = logging.getLogger(__name__)

LEGACY_SERVICE = ""
"""The service of references saved before drift state was kept per service (taken over by the
first service whose samples of the feature arrive)."""


@dataclass(frozen=True, slots=True)
class DriftSample:
    """One sampled LLM call as the drift engine needs it.

    Args:
        feature: the (already capped) feature label value.
        text: the user's prompt text (the last user message is a good choice).
        response_length: characters (or tokens, consistently) of the answer; None if unknown.
        finish_reason: the normalised finish reason; None if unknown.
        timestamp: Unix time of the call (informational).
        service: the (already capped) service label value.
    """

    feature: str
    text: str
    response_length: int | None = None
    finish_reason: str | None = None
    timestamp: float = 0.0
    service: str = UNKNOWN_SERVICE

    @property
    def key(self) -> tuple[str, str]:
        """``(service, feature)``."""
        return (self.service, self.feature)


class UnknownFeature(KeyError):
    """The drift engine has seen no sample of this feature."""


class AmbiguousFeature(LookupError):
    """Several services have this feature: say which one."""

    def __init__(self, feature: str, services: list[str]) -> None:
        super().__init__(f"feature {feature!r} is in services {', '.join(services)}: name the service")
        self.feature = feature
        self.services = services


class DriftEngine:
    """Per-feature embedding drift, centroid similarity and output drift, exported on ``registry``.

    ``observe`` may be called from any thread or coroutine; ``run_once`` from one worker at a
    time; ``refreeze`` and ``status`` from any thread. ``chart_listener(key, state)``, if
    given, receives every state of the similarity chart (one per block of ``spc_block``
    samples, from the worker thread), e.g. to chart it beside the quality engine's SPC series.
    """

    def __init__(
        self,
        *,
        registry: CollectorRegistry,
        embedder: Embedder | None = None,
        settings: DriftSettings | None = None,
        clock: Callable[[], float] = time.time,
        chart_listener: Callable[[tuple[str, str], ChartState], None] | None = None,
    ) -> None:
        self.settings = settings or DriftSettings()
        self._chart_listener = chart_listener
        self.embedder: Embedder = embedder or HashedNgramEmbedder()
        self.metrics = DriftMetrics(registry)
        self._clock = clock
        self._queue: deque[DriftSample] = deque()
        self._queue_lock = threading.Lock()
        self._known: set[tuple[str, str]] = set()
        self._features: dict[tuple[str, str], FeatureDrift] = {}
        # feature -> a reference saved before drift state was kept per service, taken over by
        # the first service whose samples of that feature arrive
        # (kept and saved as they are until then; their service is "")
        self._legacy: dict[str, FeatureDrift] = {}
        self._state_lock = threading.RLock()
        self._run_lock = threading.Lock()
        # keys given up to another replica (release_keys): samples still in flight are dropped
        self._disowned: set[tuple[str, str]] = set()
        self._saved: dict[tuple[str, str], int] = {}  # key -> its state's generation last saved or loaded

    # --- ingest side ------------------------------------------------------------------------
    def observe(self, sample: DriftSample) -> bool:
        """Queue ``sample`` for embedding; False (and counted) when it is dropped. Never blocks long."""
        reason: str | None = None
        with self._queue_lock:
            if not sample.text or sample.text.isspace():
                reason = names.DROP_EMPTY
            elif len(self._queue) >= self.settings.max_queue:
                reason = names.DROP_QUEUE_FULL
            elif sample.key not in self._known:
                if len(self._known) >= self.settings.max_features:
                    reason = names.DROP_FEATURE_CAP
                else:
                    self._known.add(sample.key)
            if reason is None:
                self._queue.append(sample)
                depth = len(self._queue)
        if reason is not None:
            self.metrics.dropped.labels(reason).inc()
            return False
        self.metrics.queue.set(depth)
        return True

    @property
    def pending(self) -> int:
        """Samples waiting to be embedded."""
        with self._queue_lock:
            return len(self._queue)

    # --- worker side ------------------------------------------------------------------------
    def run_once(self, max_samples: int | None = None) -> int:
        """Embed and process up to ``max_samples`` queued samples (all by default); returns how many.

        Samples of a batch the embedder fails on are dropped and counted; the error is logged.
        """
        with self._run_lock:
            with self._queue_lock:
                take = len(self._queue) if max_samples is None else min(max_samples, len(self._queue))
                batch = [self._queue.popleft() for _ in range(take)]
                self.metrics.queue.set(len(self._queue))
            done = 0
            size = self.settings.batch_size
            for start in range(0, len(batch), size):
                done += self._process(batch[start : start + size])
            return done

    def _process(self, samples: list[DriftSample]) -> int:
        texts = [s.text[: self.settings.max_text_chars] for s in samples]
        started = time.perf_counter()
        try:
            vectors = self.embedder.embed(texts)
        except EmbedderBudgetExhausted as exc:
            logger.warning("event=drift_samples_dropped reason=budget error=%r samples=%d", exc, len(samples))
            self.metrics.dropped.labels(names.DROP_BUDGET).inc(len(samples))
            return 0
        except EmbedderError as exc:
            logger.warning(
                "event=drift_samples_dropped reason=embed_error embedder=%s error=%r samples=%d",
                self.embedder.name,
                exc,
                len(samples),
            )
            self.metrics.dropped.labels(names.DROP_EMBED_ERROR).inc(len(samples))
            return 0
        except Exception:  # a third-party model's bug must not stop drift monitoring
            logger.exception(
                "event=drift_samples_dropped reason=embedder_raised embedder=%s samples=%d",
                self.embedder.name,
                len(samples),
            )
            self.metrics.dropped.labels(names.DROP_EMBED_ERROR).inc(len(samples))
            return 0
        if getattr(vectors, "ndim", 0) != 2 or len(vectors) != len(samples):
            logger.warning(
                "event=drift_samples_dropped reason=bad_shape embedder=%s shape=%s texts=%d",
                self.embedder.name,
                getattr(vectors, "shape", None),
                len(samples),
            )
            self.metrics.dropped.labels(names.DROP_EMBED_ERROR).inc(len(samples))
            return 0
        self.metrics.embed_seconds.observe(time.perf_counter() - started)
        now = self._clock()
        with self._state_lock:
            touched: dict[tuple[str, str], FeatureDrift] = {}
            for sample, vector in zip(samples, vectors, strict=True):
                if sample.key in self._disowned:
                    continue
                state = self._feature(sample.key)
                similarity, chart = state.add(
                    np.asarray(vector, dtype=np.float32), sample.response_length, sample.finish_reason, now
                )
                self.metrics.samples.labels(*state.key).inc()
                if similarity is not None:
                    self.metrics.similarity.labels(*state.key).observe(similarity)
                if chart is not None:
                    self._export_chart(state, chart)
                    if self._chart_listener is not None:
                        self._chart_listener(state.key, chart)
                if state.test_due():
                    self._test(state)
                touched[state.key] = state
            for state in touched.values():
                self._export_windows(state)
        return len(samples)

    def _feature(self, key: tuple[str, str]) -> FeatureDrift:
        state = self._features.get(key)
        if state is None:
            service, feature = key
            state = self._legacy.pop(feature, None)
            if state is None:
                state = FeatureDrift(feature, self.settings, zlib.crc32(feature.encode("utf-8")), service)
            else:
                state.service, state.key = service, key
                state.generation += 1  # saved again, under its service
                logger.info("event=drift_reference_adopted service=%s feature=%s", service, feature)
            self._features[key] = state
            self.metrics.init_feature(key)
            self._export_windows(state)
        return state

    def _key(self, feature: str, service: str | None) -> tuple[str, str]:
        """The state's key of ``feature`` (of ``service``, or of the one service that has it)."""
        if service is not None:
            if (service, feature) not in self._features:
                raise UnknownFeature(f"{service}/{feature}")
            return (service, feature)
        services = sorted(s for s, f in self._features if f == feature)
        if not services:
            raise UnknownFeature(feature)
        if len(services) > 1:
            raise AmbiguousFeature(feature, services)
        return (services[0], feature)

    def _test(self, state: FeatureDrift) -> None:
        results = state.run_tests()
        for signal, result in results.items():
            drifted = result.p_value < self.settings.alpha
            self.metrics.score.labels(*state.key, signal).set(result.score)
            self.metrics.p_value.labels(*state.key, signal).set(result.p_value)
            self.metrics.drifted.labels(*state.key, signal).set(int(drifted))
            self.metrics.tests.labels(*state.key, signal).inc()
            if drifted:
                logger.info(
                    "event=drift_detected service=%s feature=%s signal=%s score=%.4g p=%.4g",
                    state.service,
                    state.feature,
                    signal,
                    result.score,
                    result.p_value,
                )

    def _export_chart(self, state: FeatureDrift, chart: ChartState) -> None:
        f = state.key
        baseline = state.chart.baseline
        if baseline is None:
            return
        # The centre and limits exist from the observation that completed the warm-up.
        lower, _upper = state.chart.limits(max(chart.index, 1))
        self.metrics.similarity_centre.labels(*f).set(baseline.mean)
        self.metrics.similarity_lower.labels(*f).set(lower)
        self.metrics.similarity_ewma.labels(*f).set(baseline.mean if chart.in_warmup else chart.ewma)
        self.metrics.similarity_alarm.labels(*f).set(int(chart.alarm))

    def _export_windows(self, state: FeatureDrift) -> None:
        f = state.key
        self.metrics.reference_samples.labels(*f).set(state.reference_count if state.frozen else 0)
        self.metrics.window_samples.labels(*f).set(state.window_count)
        self.metrics.reference_frozen.labels(*f).set(state.frozen_at or 0)
        if state.similarities:
            self.metrics.similarity_mean.labels(*f).set(float(np.mean(state.similarities)))

    async def run(self, *, interval: float = 1.0) -> None:
        """Drain the queue in a worker thread until cancelled, sleeping ``interval`` s when it is empty.

        Each thread call takes at most ``4 * batch_size`` samples, so a cancellation (shutdown)
        waits for one small chunk, not for a whole backlog to be embedded.
        """
        while True:
            try:
                await asyncio.to_thread(self.run_once, 4 * self.settings.batch_size)
            except Exception:  # the monitor must outlive its own bugs; the next tick retries
                logger.exception("event=drift_run_failed")
            await asyncio.sleep(0 if self.pending else interval)

    # --- admin ------------------------------------------------------------------------------
    def refreeze(
        self, feature: str, *, service: str | None = None, from_current: bool = False
    ) -> dict[str, Any]:
        """Start a new reference window for ``feature`` (of ``service``; may be left out when
        one service has the feature) after an intended change.

        By default the next ``reference_size`` samples become the reference; with
        ``from_current`` the current window is frozen as the reference at once. The SPC chart
        and the last test results are reset either way. Raises :class:`UnknownFeature` for a
        feature never seen, :class:`AmbiguousFeature` when several services have it and no
        service is given, and ValueError when the current window is too small.
        """
        nan = float("nan")
        with self._state_lock:
            key = self._key(feature, service)
            state = self._features[key]
            state.refreeze(from_current=from_current, now=self._clock())
            for signal in names.SIGNALS:
                self.metrics.score.labels(*key, signal).set(nan)
                self.metrics.p_value.labels(*key, signal).set(nan)
                self.metrics.drifted.labels(*key, signal).set(0)
            for gauge in (
                self.metrics.similarity_mean,
                self.metrics.similarity_ewma,
                self.metrics.similarity_centre,
                self.metrics.similarity_lower,
            ):
                gauge.labels(*key).set(nan)
            self.metrics.similarity_alarm.labels(*key).set(0)
            self._export_windows(state)
            logger.info("event=drift_refrozen service=%s feature=%s from_current=%s", *key, from_current)
            return state.status()

    def features(self) -> list[tuple[str, str]]:
        """(service, feature) keys with drift state, sorted."""
        with self._state_lock:
            return sorted(self._features)

    def status(self, feature: str | None = None, *, service: str | None = None) -> dict[str, Any]:
        """JSON-ready status of every feature (of ``service`` when given), or of one feature
        (UnknownFeature if never seen, AmbiguousFeature if several services have it)."""
        with self._state_lock:
            if feature is not None:
                return self._features[self._key(feature, service)].status()
            return {
                "embedder": self.embedder.name,
                "alpha": self.settings.alpha,
                "pending": self.pending,
                "features": [
                    self._features[key].status()
                    for key in sorted(self._features)
                    if service is None or key[0] == service
                ],
            }

    # --- persistence ------------------------------------------------------------------------
    def generation(self) -> int:
        """Grows whenever a saved reference or chart baseline would differ: persist when it moves."""
        with self._state_lock:
            return sum(state.generation for state in self._features.values())

    def save_state(self, path: str | os.PathLike[str] | DriftReferences) -> int:
        """Write every frozen reference (vectors, centroid, output samples, SPC chart) to ``path``.

        One ``.npz`` file, written atomically, or a row per (service, feature) of a store's
        :class:`~llmpulse.processor.store.protocols.DriftReferences`; returns the number of
        features saved. Current windows are not saved: after a restart they fill again against
        the saved reference, so a drift that began before the restart is still measured against
        the old normal.
        """
        with self._state_lock:
            states = [*self._features.values(), *self._legacy.values()]
            if isinstance(path, str | os.PathLike):
                return write_references(path, self.embedder.name, states)
            blobs = {
                (state.service, state.feature): encode_reference(self.embedder.name, snap)
                for state in states
                if (snap := state.snapshot()) is not None
            }
            self._saved.update((state.key, state.generation) for state in states)
        refused = path.save_references(blobs)
        self._refused(refused)
        return len(blobs) - len(refused)

    def load_state(self, path: str | os.PathLike[str] | DriftReferences) -> int:
        """Restore references saved by :meth:`save_state`; returns how many features were restored.

        A missing file restores nothing; a file from another embedder or of another vector size,
        or a malformed one, is ignored with a warning (see :func:`read_references`).
        """
        dimensions = getattr(self.embedder, "dimensions", None)
        if isinstance(path, str | os.PathLike):
            saved = read_references(path, self.embedder.name, dimensions)
        else:
            saved = decode_references(path.load_references(), self.embedder.name, dimensions, "store")
        return self._restore(saved, path)

    def _restore(self, saved: Any, source: object) -> int:
        """Restore decoded references (``read_references``/``decode_references``); how many."""
        restored = 0
        with self._state_lock:
            for arrays, meta in saved:
                feature = str(meta["feature"])
                service = str(meta.get("service", LEGACY_SERVICE))
                if service == LEGACY_SERVICE:  # saved before state was kept per service
                    legacy = FeatureDrift(
                        feature, self.settings, zlib.crc32(feature.encode("utf-8")), service
                    )
                    legacy.restore(arrays, meta)
                    self._legacy[feature] = legacy
                    restored += 1
                    continue
                key = (service, feature)
                if key not in self._features and len(self._features) >= self.settings.max_features:
                    break
                state = self._feature(key)
                state.restore(arrays, meta)
                self._saved[key] = state.generation
                with self._queue_lock:
                    self._known.add(key)
                self._export_windows(state)
                restored += 1
        if restored:
            logger.info("event=drift_references_restored count=%d path=%s", restored, source)
        return restored

    # --- ownership (a Kafka owner topic moves keys between replicas) ------------------------
    def resume_keys(self, keys: Collection[tuple[str, str]], references: DriftReferences) -> int:
        """Take over the frozen references (and similarity charts) of (service, feature) ``keys``
        from the shared store, replacing what this process held for them; returns how many were
        restored. A key without a stored reference starts collecting one. Blocks on the store."""
        wanted = set(keys)
        with self._state_lock:
            self._disowned -= wanted
            self._forget(wanted)
        references.claim(wanted)  # first: a late save by the previous owner is refused from now on
        rows = {key: blob for key, blob in references.load_references().items() if key in wanted}
        if not rows:
            return 0
        dimensions = getattr(self.embedder, "dimensions", None)
        return self._restore(decode_references(rows, self.embedder.name, dimensions, "store"), "store")

    def release_keys(
        self, keys: Collection[tuple[str, str]] | None, references: DriftReferences | None
    ) -> int:
        """Save the references of ``keys`` (None: every key held) changed since they were last
        saved or loaded, then forget their state, their queued samples and their gauges; returns
        how many were saved. Blocks on the store."""
        with self._state_lock:
            wanted = set(self._features) if keys is None else set(keys)
            self._disowned |= wanted
            changed = [
                state
                for key in wanted
                if (state := self._features.get(key)) is not None
                and state.generation != self._saved.get(key, 0)
            ]
            blobs = {
                state.key: encode_reference(self.embedder.name, snap)
                for state in changed
                if (snap := state.snapshot()) is not None
            }
            self._forget(wanted)
        if references is not None and blobs:
            refused = references.save_references(blobs)
            self._refused(refused)
            return len(blobs) - len(refused)
        return len(blobs)

    def _refused(self, keys: list[tuple[str, str]]) -> None:
        """Count (and log) references the store refused: another replica owns their feature now."""
        if not keys:
            return
        self.metrics.saves_refused.labels(SAVE_REFUSED_STALE_OWNER).inc(len(keys))
        logger.warning(
            "event=drift_references_save_refused reason=%s features=%s",
            SAVE_REFUSED_STALE_OWNER,
            ",".join(f"{service}/{feature}" for service, feature in keys),
        )

    def _forget(self, keys: set[tuple[str, str]]) -> None:
        """Drop the state, queued samples and gauge series of ``keys`` (under the state lock)."""
        with self._queue_lock:
            self._queue = deque(s for s in self._queue if s.key not in keys)
            self._known -= keys
            self.metrics.queue.set(len(self._queue))
        m = self.metrics
        for key in keys:
            if self._features.pop(key, None) is None:
                continue
            self._saved.pop(key, None)
            for gauge in (
                m.similarity_mean,
                m.similarity_ewma,
                m.similarity_centre,
                m.similarity_lower,
                m.similarity_alarm,
                m.reference_samples,
                m.window_samples,
                m.reference_frozen,
            ):
                with contextlib.suppress(KeyError):
                    gauge.remove(*key)
            for signal in names.SIGNALS:
                for gauge in (m.score, m.p_value, m.drifted):
                    with contextlib.suppress(KeyError):
                        gauge.remove(*key, signal)

    def memory_bytes(self) -> int:
        """Bytes held in vector buffers across features (bounded by the settings)."""
        with self._state_lock:
            return sum(state.memory_bytes() for state in self._features.values())
