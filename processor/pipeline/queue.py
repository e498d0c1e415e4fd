"""The bounded queue between the receivers and the metrics, and the worker that drains it.

Receivers decode a request, :meth:`Pipeline.submit` it and await the result, which says how
many spans were rejected and why (for OTLP ``partial_success``). The queue is bounded in
spans: a request that does not fit raises :class:`QueueFull` (the receiver answers
RESOURCE_EXHAUSTED / 429 and the client retries later); after :meth:`Pipeline.close` every
submit raises :class:`ShuttingDown` (UNAVAILABLE / 503).

The worker shares the event loop with the HTTP receiver (the gRPC one has a thread and loop
of its own and hands requests over: see :meth:`Pipeline.admission` and
:meth:`Pipeline.watch_intake`), so it never holds the loop for long: it processes a request in
slices of at most :data:`SLICE_SECONDS` and lets the loop run between them, several loop
iterations each time (a whole 512-span request held the loop for tens of milliseconds, and
under overload new calls waited seconds to be even refused). A receiver's request is answered within about
``max_delay`` seconds: one that, when the worker comes to it, could not be processed by then
at the measured rate is answered with :class:`QueueFull` and not counted, whatever the drain
rate was when it was admitted (see :meth:`Pipeline.submit`).

Accounting: every span of a submitted request ends up exactly once in
``accepted[kind]`` or ``rejected[reason]``; spans of refused requests are counted in
``refused``. Held anthropic-SDK spans (see :mod:`llmpulse.processor.pipeline.dedup`) are counted when
released or dropped, at the latest on :meth:`Pipeline.drain`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from llmpulse.errors import LLMPulseError
from llmpulse.processor.metrics import names as M
from llmpulse.processor.metrics.derived import Accounting, DerivedMetrics
from llmpulse.processor.metrics.windows import FeatureBatch, RollingWindows
from llmpulse.processor.pipeline.dedup import Deduplicator
from llmpulse.processor.pipeline.pricing import CallPricer
from llmpulse.processor.pipeline.records import AgentSpan, Feedback, LLMCall, StepRun
from llmpulse.processor.pipeline.wire import records

logger = logging.getLogger(__name__)

FULL_WARNING_INTERVAL = 10.0  # seconds between "queue full" log lines
SLICE_SECONDS = 0.002
"""Longest the worker processes spans before letting the event loop run the receivers."""
YIELDS_PER_SLICE = 4
"""Loop iterations the worker leaves to the receivers after each slice: grpc.aio takes in one new
call per one or two iterations, so one iteration per slice would cap the call rate the processor
can even refuse (about 250/s with 2 ms slices), and calls beyond it would wait unanswered."""
_SLICE_CHECK = 4  # spans between two looks at the clock
INTAKE_LAG_LIMIT = 0.005
"""Seconds a receiver's intake thread may fall behind before the worker cedes it the interpreter."""
CEDE_SECONDS = 0.0005
"""How long the worker sleeps (releasing the GIL) after a slice while the intake is behind, or
the queue refused a request as full in the last :data:`OVERLOAD_SECONDS`."""
OVERLOAD_SECONDS = 0.5


class PipelineError(LLMPulseError):
    """Base of the reasons a request cannot be taken now."""

    reason = ""
    """The ``reason`` label it is counted under in ``requests_refused``."""


class QueueFull(PipelineError):
    """The queue has no room for the request; retry after ``retry_after`` seconds."""

    reason = M.REFUSE_QUEUE_FULL

    def __init__(self, retry_after: float) -> None:
        super().__init__(f"processing queue is full; retry in {retry_after:g}s")
        self.retry_after = retry_after


class DeadlineExceeded(PipelineError):
    """The request waited in the queue past its client's deadline; it was not counted."""

    reason = M.REFUSE_DEADLINE_EXCEEDED

    def __init__(self) -> None:
        super().__init__("the request waited past its deadline and was not processed; retry it")


class ShuttingDown(PipelineError):
    """The processor is shutting down and takes no more requests."""

    reason = M.REFUSE_SHUTTING_DOWN

    def __init__(self) -> None:
        super().__init__("the processor is shutting down; send to another instance or retry later")


@dataclass(frozen=True, slots=True)
class ExportResult:
    """Outcome of one request: spans rejected and a message saying why (empty if none)."""

    rejected: int = 0
    message: str = ""


class RecordListener(Protocol):
    """Gets the records the metrics were derived from, e.g. the quality or drift engine.

    Called on the event loop inside the hot loop: take what is needed from ``span`` (the OTLP
    span, valid only during the call; None for anthropic-SDK spans counted after their hold)
    and return at once. An exception is logged and does not affect the span's accounting.
    A listener may also have ``on_batch_end()``, called after each batch of records (one
    request, or the calls released by the de-duplicator), to apply what it added up.

    Optional too, for engines that follow the span tree (the agents engine):
    ``on_step(step, span)`` for every step span (retrieval, rerank, tool), ``on_agent(agent, span)``
    for every agent run, workflow or chain span (:class:`AgentSpan`), and ``on_other(span,
    service, environment)`` for every span that is none of these (a web request, a database
    call: the links between an agent and its calls). Only listeners that define them are called.
    """

    def on_call(self, call: LLMCall, span: Any | None) -> None:
        """One LLM call, counted once (duplicates never reach a listener)."""

    def on_feedback(self, feedback: Feedback, span: Any | None) -> None:
        """One feedback event."""


_Entry = tuple[Any, int, str, "asyncio.Future[ExportResult]", float | None, float | None, bool]


class Pipeline:
    """Bounded queue plus the worker that normalises spans and updates metrics and windows."""

    def __init__(
        self,
        *,
        capacity: int,
        derived: DerivedMetrics,
        accounting: Accounting,
        windows: RollingWindows,
        dedup: Deduplicator | None = None,
        retry_after: float = 1.0,
        tick_seconds: float = 1.0,
        listeners: Sequence[RecordListener] = (),
        pricer: CallPricer | None = None,
        max_delay: float | None = None,
    ) -> None:
        self.capacity = capacity
        self.pricer = pricer if pricer is not None else CallPricer()
        self.max_delay = max_delay
        self.listeners = tuple(listeners)
        self._batch_ends = tuple(
            listener.on_batch_end for listener in self.listeners if hasattr(listener, "on_batch_end")
        )
        self._step_hooks = tuple(lst.on_step for lst in self.listeners if hasattr(lst, "on_step"))
        self._agent_hooks = tuple(lst.on_agent for lst in self.listeners if hasattr(lst, "on_agent"))
        self._other_hooks = tuple(lst.on_other for lst in self.listeners if hasattr(lst, "on_other"))
        self.derived = derived
        self.accounting = accounting
        self.windows = windows
        self.dedup = dedup or Deduplicator()
        self.retry_after = retry_after
        self.tick_seconds = tick_seconds
        # request, spans, receiver, future, client deadline, when its answer is due (max_delay),
        # whether it found the queue empty
        self._queue: deque[_Entry] = deque()
        self._busy = False  # a request is being processed (between two slices)
        self._rate: float | None = None  # spans drained per wall-clock second while busy (EWMA)
        self._queued_spans = 0
        self._wakeup = asyncio.Event()
        self._closed = False
        self._last_full_warning = -FULL_WARNING_INTERVAL
        self._full_since_warning = 0
        self._resumed = asyncio.Event()
        self._resumed.set()
        self._worker: asyncio.Task[None] | None = None
        self._intake_lags: list[Callable[[], float]] = []
        self._full_at = -FULL_WARNING_INTERVAL  # when the queue last refused a request as full

    @property
    def closed(self) -> bool:
        """True once :meth:`close` was called."""
        return self._closed

    @property
    def queued_spans(self) -> int:
        """Spans waiting to be processed."""
        return self._queued_spans

    def start(self) -> None:
        """Start the worker task on the running loop."""
        if self._worker is None:
            self._worker = asyncio.get_running_loop().create_task(self._run(), name="llmpulse-pipeline")

    def watch_intake(self, lag: Callable[[], float]) -> None:
        """Give way to a receiver running on a thread of its own when ``lag()`` (seconds it is
        behind) passes :data:`INTAKE_LAG_LIMIT`, and whenever the queue is refusing requests
        as full (overload: calls come faster than they are drained, and every one must be
        answered): after each slice the worker then sleeps :data:`CEDE_SECONDS`, releasing the
        interpreter. Without it the receiver's thread gets the GIL only at the interpreter's
        switch interval, and under overload, on a loaded machine, calls waited seconds before
        they were even refused. Under overload the receiver comes first: answering (mostly refusing) every
        call within its deadline matters more than the spans a second drained meanwhile."""
        self._intake_lags.append(lag)

    def pause(self) -> None:
        """Stop taking requests off the queue (it fills up and then refuses) until :meth:`resume`."""
        self._resumed.clear()

    def resume(self) -> None:
        """Undo :meth:`pause`."""
        self._resumed.set()

    def admission(self, pending: int = 0) -> QueueFull | ShuttingDown | None:
        """Why a request arriving now would be refused before it is even decoded (None: it may
        queue), when nothing could be queued now.

        Saves the decoding under overload; the receiver counts such a request with
        :meth:`count_refusal`, in ``requests_refused`` only (its spans were never seen). Reads
        the queue's state and changes nothing, so a receiver on another thread may call it
        (and then has :meth:`count_refusal` run on the loop); ``pending`` spans are on their way
        to :meth:`submit` and count as queued. Returned, not raised: a raised exception's
        traceback and the frame holding it make a reference cycle per refused request.
        """
        if self._closed:
            return ShuttingDown()
        queued = self._queued_spans + pending
        if queued >= self.capacity or self._too_slow(queued):
            return QueueFull(self.retry_after)
        return None

    def count_refusal(self, receiver: str, refusal: PipelineError) -> None:
        """Count a request refused with ``refusal`` before it was decoded (on the loop)."""
        self.accounting.refuse(receiver, refusal.reason, 0)
        if isinstance(refusal, QueueFull):
            self._warn_full()

    @property
    def expected_wait(self) -> float | None:
        """Seconds a request queued now would wait, from the measured drain rate (None: not yet known)."""
        return None if self._rate is None else self._queued_spans / self._rate

    def _late(self, deadline: float | None, spans: int) -> bool:
        """Whether ``spans`` more spans, processed at the measured rate, would end past ``deadline``."""
        if deadline is None:
            return False
        now = time.monotonic()
        return now > deadline or (self._rate is not None and now + spans / self._rate > deadline)

    def _too_slow(self, spans: int) -> bool:
        """Whether ``spans`` queued spans would take longer than ``max_delay`` to drain."""
        return self.max_delay is not None and self._rate is not None and spans > self._rate * self.max_delay

    def submit(
        self,
        request: Any,
        spans: int,
        receiver: str,
        deadline: float | None = None,
        *,
        answer_within_delay: bool = False,
        arrived: float | None = None,
    ) -> asyncio.Future[ExportResult]:
        """Queue a decoded request; raises :class:`QueueFull` or :class:`ShuttingDown`.

        The queue is bounded by ``capacity`` spans and, once the drain rate is known, by time:
        a request is refused when what is queued before it would take over ``max_delay`` seconds,
        so clients hear "retry later" at once instead of timing out. With
        ``answer_within_delay`` (the receivers: their clients retry on RESOURCE_EXHAUSTED / 429)
        a request that, when the worker comes to it, could not be done within ``max_delay`` of
        its arrival at the measured rate (the load changed since) gets :class:`QueueFull` then,
        uncounted; without it (a consumer that waits for its result, as the Kafka source does)
        it is processed however long it waited. ``deadline``
        (``time.monotonic()``) is the client's: a request that cannot be processed before it is
        refused at once, and one that can no longer be (still queued, or its processing would
        end past it) is answered with :class:`DeadlineExceeded` and not counted, so the client's
        retry is not counted twice. ``arrived`` (``time.monotonic()``, default now) is when the
        receiver took the request in: with ``answer_within_delay`` its answer is due ``max_delay``
        after that (a receiver that spent time decoding it passes when it began).
        """
        accounting = self.accounting
        accounting.received[receiver] += spans
        if self._closed:
            accounting.refuse(receiver, M.REFUSE_SHUTTING_DOWN, spans)
            raise ShuttingDown()
        queued = self._queued_spans
        full = queued and (queued + spans > self.capacity or self._too_slow(queued + spans))
        if full or self._late(deadline, queued + spans):
            accounting.refuse(receiver, M.REFUSE_QUEUE_FULL, spans)
            self._warn_full()
            raise QueueFull(self.retry_after)
        future: asyncio.Future[ExportResult] = asyncio.get_running_loop().create_future()
        start = time.monotonic() if arrived is None else arrived
        expires = start + self.max_delay if answer_within_delay and self.max_delay else None
        self._queue.append((request, spans, receiver, future, deadline, expires, not queued))
        self._queued_spans += spans
        accounting.queue_spans = self._queued_spans
        self._wakeup.set()
        return future

    def _warn_full(self) -> None:
        # one line per interval, not per refused request: a full queue refuses many per second
        self._full_since_warning += 1
        now = self._full_at = time.monotonic()
        if now - self._last_full_warning >= FULL_WARNING_INTERVAL:
            logger.warning(
                "event=queue_full queued_spans=%d capacity=%d refused_requests=%d retry_after=%g",
                self._queued_spans,
                self.capacity,
                self._full_since_warning,
                self.retry_after,
            )
            self._last_full_warning = now
            self._full_since_warning = 0

    def close(self) -> None:
        """Refuse new requests from now on; queued ones are still processed by :meth:`drain`."""
        self._closed = True

    async def drain(self, timeout: float) -> bool:
        """Close, process what is queued within ``timeout`` s, release held spans, stop the worker.

        Requests still queued after the timeout are answered with :class:`ShuttingDown`
        (the client retries them elsewhere). Returns True if the queue was fully drained.
        """
        self.close()
        deadline = time.monotonic() + timeout
        while self._queue and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        drained = not self._queue
        while self._queue:
            _, spans, receiver, future, *_ = self._queue.popleft()
            self._queued_spans -= spans
            self.accounting.refuse(receiver, M.REFUSE_SHUTTING_DOWN, spans)
            if not future.done():
                future.set_exception(ShuttingDown())
        self.accounting.queue_spans = self._queued_spans
        while self._busy:  # the request in hand is finished (one request's work), never cut
            await asyncio.sleep(0.001)
        if self._worker is not None:
            self._worker.cancel()
            await asyncio.gather(self._worker, return_exceptions=True)
            self._worker = None
        self._count_released(self.dedup.release(everything=True))
        return drained

    async def _run(self) -> None:
        while True:
            try:
                async with asyncio.timeout(self.tick_seconds):
                    await self._wakeup.wait()
            except TimeoutError:
                pass  # no traffic: still release held spans below
            self._wakeup.clear()
            await self._resumed.wait()
            busy_since = time.monotonic()
            drained = 0
            while self._queue:
                request, spans, receiver, future, deadline, expires, alone = self._queue.popleft()
                self._queued_spans -= spans
                self.accounting.queue_spans = self._queued_spans
                if future.done() or self._late(deadline, spans):
                    # the client gave up (or will have, before the answer arrives): counting the
                    # spans now would count them twice once it retries
                    self.accounting.refuse(receiver, M.REFUSE_DEADLINE_EXCEEDED, spans)
                    if not future.done():
                        future.set_exception(DeadlineExceeded())
                    continue
                # its answer would come after max_delay (one that found the queue empty is taken
                # however long it takes, as in submit, unless it waited past max_delay)
                if expires is not None and (
                    time.monotonic() > expires or (not alone and self._late(expires, spans))
                ):
                    self.accounting.refuse(receiver, M.REFUSE_QUEUE_FULL, spans)
                    self._warn_full()
                    future.set_exception(QueueFull(self.retry_after))
                    continue
                self._busy = True
                try:
                    result = await self._process_sliced(request, spans, sliced=receiver != M.RECEIVER_KAFKA)
                finally:
                    self._busy = False
                if not future.done():
                    future.set_result(result)
                drained += spans
                self._measure(drained, time.monotonic() - busy_since)
            self._count_released(self.dedup.release())

    async def _process_sliced(self, request: Any, spans: int, *, sliced: bool = True) -> ExportResult:
        """:meth:`process`, letting the loop run between slices of :data:`SLICE_SECONDS`.

        A Kafka source's request is processed in one piece (``sliced=False``): a scrape between
        two slices would show half of its counts while its offset, not yet counted, stays
        uncommitted, and a replica dying then would have the next owner count that half again."""
        steps = self._steps(request, SLICE_SECONDS if sliced else None)
        try:
            lags = self._intake_lags
            while True:
                next(steps)
                if lags and (
                    time.monotonic() - self._full_at < OVERLOAD_SECONDS
                    or max(lag() for lag in lags) > INTAKE_LAG_LIMIT
                ):
                    time.sleep(CEDE_SECONDS)  # blocks this loop on purpose: the GIL goes to the intake
                for _ in range(YIELDS_PER_SLICE):
                    await asyncio.sleep(0)
        except StopIteration as done:
            result: ExportResult = done.value
            return result
        except Exception:  # never let one request stop the worker
            logger.exception("event=process_failed spans=%d", spans)
            return ExportResult()

    def _measure(self, spans: int, seconds: float) -> None:
        """Update the drain rate from ``spans`` drained in ``seconds`` of a busy period."""
        if seconds <= 0 or spans < 64:
            return
        rate = spans / seconds
        self._rate = rate if self._rate is None else 0.8 * self._rate + 0.2 * rate

    def process(self, request: Any) -> ExportResult:
        """Normalise and count every span of one request (synchronous; the hot loop)."""
        steps = self._steps(request, None)
        while True:
            try:
                next(steps)
            except StopIteration as done:
                result: ExportResult = done.value
                return result

    def _steps(self, request: Any, slice_seconds: float | None) -> Generator[None, None, ExportResult]:
        """:meth:`process` as a generator that yields after every ``slice_seconds`` of work
        (never when None); the request's counts and batch end apply after its last span."""
        resumed = time.perf_counter()
        slice_end = None if slice_seconds is None else resumed + slice_seconds
        working = 0.0  # seconds of work on this request, not counting the loop's turns between slices
        seen = 0
        accounting, derived, dedup = self.accounting, self.derived, self.dedup
        observe_llm, observe_step = derived.observe_llm, derived.observe_step
        listeners = self.listeners
        pricer = self.pricer
        pricer.begin()
        price = pricer.price
        batches: dict[tuple[str, str], FeatureBatch] = {}
        rejected: dict[str, int] = {}
        llm = step = feedback = agent = other = duplicate = 0
        step_hooks, agent_hooks, other_hooks = self._step_hooks, self._agent_hooks, self._other_hooks
        for record, span, service, environment in records(request):
            seen += 1
            if slice_end is not None and not seen % _SLICE_CHECK:
                now = time.perf_counter()
                if now > slice_end:
                    working += now - resumed
                    yield
                    resumed = time.perf_counter()
                    slice_end = resumed + (slice_seconds or 0.0)
            kind = type(record)
            if kind is LLMCall:
                call: LLMCall = record
                if call.cost_usd is None:
                    price(call)
                if call.secondary:
                    if dedup.secondary(call):
                        duplicate += 1
                    continue  # held: counted on release
                dropped = dedup.primary(call)
                if dropped:
                    duplicate += dropped
                feature = observe_llm(call)
                call.service, call.feature = feature  # the engines key state as the metrics label
                batch = batches.get(feature)
                if batch is None:
                    batch = batches[feature] = FeatureBatch()
                batch.add(call)
                llm += 1
                if listeners:
                    self._notify_call(call, span)
            elif record is None:
                other += 1
                if other_hooks:
                    self._notify(other_hooks, span, service, environment)
            elif kind is StepRun:
                observe_step(record)
                step += 1
                if step_hooks:
                    self._notify(step_hooks, record, span)
            elif kind is AgentSpan:
                agent += 1
                if agent_hooks:
                    self._notify(agent_hooks, record, span)
            elif kind is Feedback:
                record.service, record.feature = derived.observe_feedback(record)
                feedback += 1
                if listeners:
                    self._notify_feedback(record, span)
            else:
                reason: str = record
                rejected[reason] = rejected.get(reason, 0) + 1
        accepted = accounting.accepted
        accepted[M.ACCEPTED_LLM] += llm
        accepted[M.ACCEPTED_STEP] += step
        accepted[M.ACCEPTED_FEEDBACK] += feedback
        accepted[M.ACCEPTED_AGENT] += agent
        accepted[M.ACCEPTED_OTHER] += other
        accepted[M.ACCEPTED_DUPLICATE] += duplicate
        if batches:
            self.windows.add(batches)
        if self._batch_ends:
            self._end_batch()
        accounting.batch_seconds.observe(working + time.perf_counter() - resumed)
        if not rejected:
            return ExportResult()
        for reason, n in rejected.items():
            accounting.rejected[reason] += n
        total = sum(rejected.values())
        detail = ", ".join(f"{reason}={n}" for reason, n in sorted(rejected.items()))
        return ExportResult(total, f"llmpulse rejected {total} span(s) with invalid values: {detail}")

    def _notify_call(self, call: LLMCall, span: Any | None) -> None:
        # Listeners keep per-(service, feature) state (charts, references, labelled metrics): the
        # call holds the capped labels the processor's own metrics use (set once it is counted),
        # never an unbounded raw value.
        for listener in self.listeners:
            try:
                listener.on_call(call, span)
            except Exception:
                logger.exception("event=listener_failed listener=%s", type(listener).__name__)

    @staticmethod
    def _notify(hooks: tuple[Any, ...], *args: Any) -> None:
        for hook in hooks:
            try:
                hook(*args)
            except Exception:
                owner = getattr(hook, "__self__", hook)
                logger.exception("event=listener_failed listener=%s", type(owner).__name__)

    def _notify_feedback(self, feedback: Feedback, span: Any | None) -> None:
        for listener in self.listeners:  # capped labels, as for calls
            try:
                listener.on_feedback(feedback, span)
            except Exception:
                logger.exception("event=listener_failed listener=%s", type(listener).__name__)

    def _end_batch(self) -> None:
        for end in self._batch_ends:
            try:
                end()
            except Exception:
                owner = getattr(end, "__self__", end)
                logger.exception("event=listener_failed listener=%s", type(owner).__name__)

    def _count_released(self, calls: list[LLMCall]) -> None:
        if not calls:
            return
        batches: dict[tuple[str, str], FeatureBatch] = {}
        for call in calls:
            feature = self.derived.observe_llm(call)
            call.service, call.feature = feature
            batches.setdefault(feature, FeatureBatch()).add(call)
            if self.listeners:
                self._notify_call(call, None)
        self.accounting.accepted[M.ACCEPTED_LLM] += len(calls)
        self.windows.add(batches)
        if self._batch_ends:
            self._end_batch()
