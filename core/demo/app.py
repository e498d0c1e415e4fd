"""The demo's application: a small RAG-style service under steady, noisy traffic.

Run as a separate process, instrumented by the environment alone (``LLMPULSE_ENABLED=1`` and
``OTEL_EXPORTER_OTLP_ENDPOINT``); it only uses llmpulse's public API to say which feature a
request belongs to (:class:`llmpulse.context`), to mark its pipeline steps
(:class:`llmpulse.step`) and to send user feedback (:func:`llmpulse.feedback`)::

    python -m llmpulse.demo.app --scenario STATE.json --base-url http://127.0.0.1:8700

Each feature of :data:`llmpulse.demo.scenario.FEATURES` receives Poisson arrivals at its rate.
A RAG request: retrieval (vector store), rerank, the LLM call through the official ``openai``
or ``anthropic`` package, then what the user does (thumbs, follow-up, abandon); ``support-chat``
requests are conversations of such questions (``llmpulse.context(conversation_id=...)``). An
agent request (``trip-agent``): an ``llmpulse.agent`` run of LLM calls and ``llmpulse.tool``
calls per turn, in a conversation of one to three turns. Every call carries the time the app
made it (:func:`_sent_at`). The app-side incidents (slow retrieval, prompt bloat, new topics,
abandonment, users leaving after the first answer, a failing tool, a looping agent) switch on
while their key is in the scenario file; ``"stop": true`` there ends the process after the
requests in flight.
"""

from __future__ import annotations

import argparse
import logging
import math
import random
import sys
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from llmpulse.demo.provider import SENT_AT_HEADER
from llmpulse.demo.scenario import AGENT, AGENT_TOOL, EXIT_SHARE, FEATURES, LOOP_REPEATS, Feature, read_active

logger = logging.getLogger(__name__)

QUESTIONS = (
    "How do I get a refund for my last invoice?",
    "Where can I download my invoices as PDF?",
    "How do I reset my password?",
    "Does the Team plan include single sign-on?",
    "How long does a workspace export take?",
    "Can I change the card I pay with?",
    "Why was I charged twice this month?",
    "How do I add a seat for a new colleague?",
    "Can I get a copy of the receipt for the annual plan?",
    "My login link expired, how do I get a new one?",
    "Is there a discount for non-profit organisations?",
    "How do I cancel my subscription at the end of the month?",
)
_OPENERS = ("", "", "Hi, ", "Hello! ", "Quick question: ", "Please help. ", "Thanks in advance. ")
_FOLLOW_UP_OPENERS = ("", "", "Thanks. ", "One more thing: ", "Also, ", "OK. ")
_CONTEXTS = (
    "",
    "",
    "",
    " I am on the Team plan.",
    " We are a small company.",
    " This is urgent.",
    " I use the web app.",
)
NEW_TOPIC_QUESTIONS = (
    "Does the new Atlas voice assistant understand Portuguese?",
    "When will Atlas voice be available on Android tablets?",
    "Can Atlas voice read my calendar aloud while driving?",
    "Is my Atlas voice recording stored on your servers?",
)
_CITIES = ("Lisbon", "Porto", "Madrid", "Rome", "Vienna", "Prague", "Oslo", "Dublin", "Athens")
TRIP_QUESTIONS = (
    "Find me a flight to {city} next weekend.",
    "Plan a three-day trip to {city} in spring, flights included.",
    "What is the cheapest way to get to {city} from Berlin?",
    "Book a return flight to {city} for two adults.",
    "I need to be in {city} by Monday morning, what are my options?",
    "Suggest a weekend itinerary for {city} with flights and a hotel.",
    "Is there a direct flight to {city} in the evening?",
    "Change my trip so that I fly to {city} one day later.",
)
DOCUMENTS_TO_SUMMARIZE = (
    "Ticket 4411: customer says the payment failed twice, card ending 0042, asks for retry.",
    "Notes of the weekly billing sync: redesign ships next sprint, Canada tax rules open.",
    "Thread: SSO login broken after the SAML change, support reset configuration, fixed.",
)
_WORDS = [
    "account",
    "billing",
    "invoice",
    "refund",
    "seat",
    "plan",
    "workspace",
    "export",
    "password",
    "security",
    "login",
    "card",
    "payment",
    "tax",
    "region",
    "admin",
    "owner",
    "member",
    "policy",
    "retention",
    "backup",
    "audit",
    "webhook",
    "token",
    "limit",
]


# Median seconds of the RAG steps: a query embedding plus a vector search, a cross-encoder
# rerank, and the vector store in the retrieval_slowdown incident. Realistic, and far enough
# over what a loaded machine adds to a thread's sleep: the step latency alert fires at 1.5 times
# the step's usual p95 and at least 0.1 s over it, so a 40 ms step was pushed over by a few
# calls in a window stalled 0.15 s each (a thread waiting for a CPU to wake up), which this
# machine, shared by several jobs, did: LLMPulseStepLatencyHigh{step="retrieval"} fired with no
# incident. At these medians a stall has to be about a quarter of a second on several calls.
RETRIEVAL_S, RERANK_S, SLOW_RETRIEVAL_S = 0.25, 0.2, 1.2


class VectorStore:
    """A stand-in for the retrieval backend: documents of realistic length, seeded."""

    def __init__(self, rng: random.Random, documents: int = 200, words: int = 110) -> None:
        self._docs = [" ".join(rng.choice(_WORDS) for _ in range(words)) for _ in range(documents)]

    def search(self, rng: random.Random, k: int, slow: bool) -> list[str]:
        time.sleep(_lognormal(rng, SLOW_RETRIEVAL_S if slow else RETRIEVAL_S, 0.25))
        return rng.sample(self._docs, k)


def _lognormal(rng: random.Random, median: float, sigma: float) -> float:
    return median * math.exp(rng.gauss(0.0, sigma))


THINK_S = 0.5
"""Median seconds a user reads and types between two turns of a conversation. Real seconds, as
the latencies are (the traffic is not time-compressed), so well inside the demo's session
timeout (``llmpulse.demo.rules.SESSION_TIMEOUT_FLOOR_S``)."""


FLIGHT_SEARCH_S = 0.45
"""Median seconds of the agent's flight search, a remote API as such searches are. A tool step
has few calls per compressed window (about 17 at speed 120), so its p95 is about its slowest
call: at 30 ms, one call stalled 0.15 s by the loaded machine (a thread waiting for the CPU to
wake up) was over the step latency alert's threshold (1.5 times the baseline and 0.1 s above it)
for a whole window. At 0.45 s with a narrow spread the threshold is near 1 s, which only a half-
second stall reaches, and the spread alone never does."""


def _sent_at() -> dict[str, str]:
    """The request header that says when the app made the call: the scripted provider counts its
    latency from there, so time the loaded machine took before the request reached it is part of
    the scripted latency rather than added to it (:mod:`llmpulse.demo.provider`)."""
    return {SENT_AT_HEADER: f"{time.time():.6f}"}


class DemoApp:
    """Sends the traffic; every dependency (clients, scenario reader, clock) is passed in."""

    def __init__(
        self,
        *,
        openai_client: Any,
        anthropic_client: Any,
        active: Callable[[], frozenset[str]],
        seed: int = 11,
    ) -> None:
        import llmpulse

        self._llmpulse = llmpulse
        self._openai = openai_client
        self._anthropic = anthropic_client
        self._active = active
        self._rng = random.Random(seed)
        self._rng_lock = threading.Lock()
        self._store = VectorStore(random.Random(seed + 1))

    def _random(self) -> random.Random:
        with self._rng_lock:
            return random.Random(self._rng.random())

    def handle(self, feature: Feature) -> None:
        """One user request of ``feature`` (a call, a conversation, an agent's conversation), end
        to end. Never raises."""
        try:
            rng = self._random()
            if feature.agent:
                with self._llmpulse.context(feature=feature.name):
                    self._agent(feature, rng)
            elif feature.turns != (1,):
                with self._llmpulse.context(feature=feature.name):
                    self._chat(feature, rng)
            else:  # one call per request, under a session id of its own (as many apps do)
                with self._llmpulse.context(feature=feature.name, session_id=f"s{rng.randrange(10**6)}"):
                    if feature.rag:
                        self._rag(feature, rng, self._active())
                    else:
                        self._summarize(feature, rng, self._active())
        except Exception:  # the app keeps serving; the instrumentation already recorded the failure
            logger.debug("event=demo_request_failed feature=%s", feature.name, exc_info=True)

    def _chat(self, feature: Feature, rng: random.Random) -> None:
        """A conversation: questions one after another, the user reading and typing in between;
        it ends early when the user abandons (or a call fails). In the ``first_answer_exit``
        incident most users leave after the first answer without a word."""
        turns = rng.choice(feature.turns)
        silent_exit = "first_answer_exit" in self._active() and rng.random() < EXIT_SHARE
        with self._llmpulse.context(conversation_id=f"chat-{rng.randrange(10**9)}"):
            for turn in range(1 if silent_exit else turns):
                if turn:
                    time.sleep(_lognormal(rng, THINK_S, 0.3))
                if not self._rag(feature, rng, self._active(), react=not silent_exit, follow_up=turn > 0):
                    return

    def _rag(
        self,
        feature: Feature,
        rng: random.Random,
        active: frozenset[str],
        *,
        react: bool = True,
        follow_up: bool = False,
    ) -> bool:
        """One question answered from retrieved context; False when the user abandons."""
        llmpulse = self._llmpulse
        support = feature.name == "support-chat"
        topics = NEW_TOPIC_QUESTIONS if support and "topic_shift" in active else QUESTIONS
        opener = rng.choice(_FOLLOW_UP_OPENERS if follow_up else _OPENERS)
        question = opener + rng.choice(topics) + rng.choice(_CONTEXTS)
        k = 3 if support else 5
        if feature.name == "doc-qa" and "cost_spike" in active:
            k *= 10  # prompt bloat: a template change stuffs far more context in
        slow = feature.name == "doc-qa" and "retrieval_slowdown" in active
        with llmpulse.step("retrieval", data_source="kb-vectors") as retrieval:
            documents = self._store.search(rng, k, slow)
            retrieval.record(document_count=len(documents), top_score=round(rng.uniform(0.6, 0.95), 3))
        with llmpulse.step("rerank"):
            time.sleep(_lognormal(rng, RERANK_S, 0.3))
        messages = [
            {"role": "system", "content": "Answer from the context only.\n\n" + "\n\n".join(documents)},
            {"role": "user", "content": question},
        ]
        response_id = None
        if support and rng.random() < 1 / 3:
            stream = self._openai.chat.completions.create(
                model=feature.model,
                messages=messages,
                stream=True,
                stream_options={"include_usage": True},
                extra_headers=_sent_at(),
            )
            for _ in stream:
                pass
        else:
            response = self._openai.chat.completions.create(
                model=feature.model, messages=messages, extra_headers=_sent_at()
            )
            response_id = response.id
        return self._user_reaction(feature, rng, active, response_id) if react else True

    def _agent(self, feature: Feature, rng: random.Random) -> None:
        """A trip-planning agent in a conversation of a few turns: each turn is a run that searches
        flights (one LLM call and one search per leg), then answers. The incidents make the search
        fail, or the agent loop on one search."""
        llmpulse = self._llmpulse
        with llmpulse.context(conversation_id=f"trip-{rng.randrange(10**9)}"):
            for turn in range(rng.choice(feature.turns)):
                if turn:
                    time.sleep(_lognormal(rng, THINK_S, 0.3))
                active = self._active()
                looping, failing = "agent_loop" in active, "tool_failure" in active
                with llmpulse.agent(AGENT):
                    text = rng.choice(TRIP_QUESTIONS).format(city=rng.choice(_CITIES))
                    question = [
                        {"role": "user", "content": rng.choice(_OPENERS) + text + rng.choice(_CONTEXTS)}
                    ]
                    legs = LOOP_REPEATS if looping else rng.choice((1, 2))
                    for leg in range(legs):
                        self._openai.chat.completions.create(
                            model=feature.model, messages=question, extra_headers=_sent_at()
                        )
                        arguments = (
                            {"to": "LIS", "date": "2026-12-24"} if looping else {"leg": leg, "turn": turn}
                        )
                        try:
                            with llmpulse.tool(AGENT_TOOL, arguments=arguments):
                                time.sleep(_lognormal(rng, FLIGHT_SEARCH_S, 0.12))
                                if failing and rng.random() < 0.6:
                                    raise TimeoutError("flight search timed out")
                        except TimeoutError:
                            pass  # the agent answers without that leg's flights
                    self._openai.chat.completions.create(
                        model=feature.model, messages=question, extra_headers=_sent_at()
                    )

    def _summarize(self, feature: Feature, rng: random.Random, active: frozenset[str]) -> None:
        self._anthropic.messages.create(
            model=feature.model,
            max_tokens=300,
            messages=[{"role": "user", "content": "Summarize:\n" + rng.choice(DOCUMENTS_TO_SUMMARIZE)}],
            extra_headers=_sent_at(),
        )

    def _user_reaction(
        self, feature: Feature, rng: random.Random, active: frozenset[str], response_id: str | None
    ) -> bool:
        """What the user does after the answer (thumbs are 1 up / 0 down, as the processor
        expects); False when the user abandons."""
        feedback = self._llmpulse.feedback
        support = feature.name == "support-chat"
        abandon, coverage, happy = 0.05, 0.25, 0.8
        if support and "abandonment_surge" in active:
            abandon, coverage, happy = 0.55, 0.20, 0.97  # the unhappy leave; the survivors click up
        elif support and "quality_regression" in active:
            abandon, coverage, happy = 0.10, 0.30, 0.45
        if rng.random() < abandon:
            feedback("abandoned", 1, response_id=response_id)
            return False
        if rng.random() < coverage:
            feedback("thumbs", 1 if rng.random() < happy else 0, response_id=response_id)
        if rng.random() < 0.1:
            feedback("follow_up", 1, response_id=response_id)
        return True


def run(app: DemoApp, stop: Callable[[], bool], *, workers: int = 96) -> None:
    """Poisson arrivals per feature until ``stop()``; then wait for the requests in flight."""
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="demo-request") as pool:
        rng = random.Random(3)
        next_at = {f.name: time.monotonic() + rng.expovariate(f.rate_per_s) for f in FEATURES}
        while not stop():
            now = time.monotonic()
            for feature in FEATURES:
                while next_at[feature.name] <= now:
                    pool.submit(app.handle, feature)
                    next_at[feature.name] += rng.expovariate(feature.rate_per_s)
            time.sleep(max(0.0, min(min(next_at.values()) - time.monotonic(), 0.05)))


class _ScenarioFile:
    """Reads the scenario file at most every ``interval`` seconds."""

    def __init__(self, path: Path, interval: float = 0.2) -> None:
        self._path, self._interval = path, interval
        self._lock = threading.Lock()
        self._read_at = -math.inf
        self._value: tuple[frozenset[str], bool] = (frozenset(), False)

    def _get(self) -> tuple[frozenset[str], bool]:
        with self._lock:
            if time.monotonic() - self._read_at >= self._interval:
                self._value, self._read_at = read_active(self._path), time.monotonic()
            return self._value

    def active(self) -> frozenset[str]:
        return self._get()[0]

    def stop(self) -> bool:
        return self._get()[1]


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the app process."""
    parser = argparse.ArgumentParser(prog="python -m llmpulse.demo.app", description=__doc__.split("\n\n")[0])
    parser.add_argument("--scenario", type=Path, required=True, help="the demo's scenario JSON file")
    parser.add_argument("--base-url", required=True, help="fake provider, e.g. http://127.0.0.1:8700")
    parser.add_argument("--seed", type=int, default=11)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    import anthropic
    import openai

    scenario = _ScenarioFile(args.scenario)
    app = DemoApp(
        # No retries on the OpenAI features: a chat that must answer fast shows the user a
        # fallback rather than waiting out the SDK's back-off (so failures reach the metrics).
        openai_client=openai.OpenAI(base_url=args.base_url + "/v1", api_key="demo", max_retries=0),
        anthropic_client=anthropic.Anthropic(base_url=args.base_url, api_key="demo", max_retries=2),
        active=scenario.active,
        seed=args.seed,
    )
    run(app, scenario.stop)
    return 0


if __name__ == "__main__":
    sys.exit(main())
