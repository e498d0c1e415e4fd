"""The demo's fake LLM provider behaviour: realistic replies, and the provider-side incidents.

:func:`reply_for` is the :meth:`FakeProvider.set_handler` function the demo installs. Normal
replies have per-model log-normal latency, streamed time to first token, answers of varying
length (noise that must not page anybody).
Latencies are counted from the moment the app made the call (the :data:`SENT_AT_HEADER` the
demo app sends), not from when the request reached this server: on a loaded machine the app's
own work before sending, the loopback hop and this server's thread waking up take time, which is
then spent inside the scripted latency instead of being added to it. What the machine adds after
the answer is written (the client reading it) is still measured, as it would be in production.
Incidents while active: an error burst (HTTP 500/503 for a share of one model's calls), a
weaker model answering (short, wrong answers, with the weaker model's name as the response
model) and a silent model change (another response
model). Judge requests (the quality engine's evaluator prompt) get a JSON verdict that scores
the weaker model's answers low, so the judge works against this provider too.
"""

from __future__ import annotations

import json
import math
import random
import threading
import time
from collections.abc import Callable

from llmpulse.demo.scenario import ScenarioState
from llmpulse.testing.fake_judge import JUDGE_MARKER
from llmpulse.testing.fake_provider import FakeReply, RecordedRequest

__all__ = ["BAD_ANSWERS", "JUDGE_MARKER", "SENT_AT_HEADER", "WORSE_MODEL", "reply_for"]

JUDGE_DIMENSIONS = ("correctness", "completeness", "tone", "relevance", "groundedness")

WORSE_MODEL = "gpt-4o-mini-lite"
"""The response model of the quality regression's answers (the weaker model)."""
SENT_AT_HEADER = "x-llmpulse-demo-sent-at"
"""Request header: unix seconds when the demo app made the call."""

# Median latency and streamed time to first token (s) per requested model, log-normal with
# _SIGMA: realistic for hosted models, and in the lower part of a bucket of the semconv duration
# histogram (1.28-2.56 s; 0.64-1.28 s for the first token), so that the p95 read from the buckets
# stays well inside its bucket: a call 0.2 s late does not carry a window's p95 across a bucket
# boundary (which the latency and TTFT regression alerts would read as 50% slower).
_LATENCY = {"gpt-4o-mini": 1.5, "gpt-4o": 1.6, "claude-haiku-4-5": 1.5, "gpt-4.1-mini": 1.5}
_TTFT = 0.7
_SIGMA = 0.15

GOOD_ANSWERS = (
    "You can request a refund within 30 days of purchase from the Billing page; the money is "
    "returned to the original payment method within five business days.",
    "To reset your password, open Settings, choose Security and follow the link we e-mail you. "
    "The link expires after one hour.",
    "Invoices are generated on the first day of each month and can be downloaded as PDF from "
    "the Billing page. Each invoice lists the seats and add-ons of the previous month, the taxes "
    "that apply to your country and the payment method that was charged.",
    "Yes. The Team plan includes single sign-on with SAML and SCIM provisioning for up to 200 "
    "seats; larger organisations should contact sales for the Enterprise plan.",
    "The export runs in the background and you receive an e-mail with a download link when it "
    "is ready, usually within ten minutes for a workspace of average size.",
)
SUMMARIES = (
    "The customer reports a failed payment, asks for a retry and confirms the card details.",
    "Meeting notes: the team agreed to ship the billing redesign next sprint; two risks remain "
    "(tax rules in Canada and the migration of old invoices), owners assigned.",
    "Thread summary: the user could not log in after the SSO change; support reset the SAML "
    "configuration and the user confirmed access.",
)
BAD_ANSWERS = (
    "It depends.",
    "Please check the documentation.",
    "Refunds are not possible.",
    "I think it might be in settings somewhere.",
)


def _lognormal(rng: random.Random, median: float, sigma: float = _SIGMA) -> float:
    return median * math.exp(rng.gauss(0.0, sigma))


def _messages_text(body: dict[str, object]) -> str:
    parts = []
    for key in ("system", "messages", "input", "prompt"):
        value = body.get(key)
        if value is not None:
            parts.append(value if isinstance(value, str) else json.dumps(value))
    return "\n".join(parts)


def _judge_verdict(rng: random.Random, text: str) -> FakeReply:
    bad = any(answer in text for answer in BAD_ANSWERS)
    scores = {d: (rng.choice((1, 2)) if bad else rng.choice((4, 4, 5))) for d in JUDGE_DIMENSIONS}
    explanation = "The answer is vague and wrong." if bad else "Correct and grounded."
    return FakeReply(text=json.dumps({**scores, "explanation": explanation}), latency=0.05)


def _sent_at(request: RecordedRequest) -> float | None:
    try:
        return float(request.headers[SENT_AT_HEADER])
    except (KeyError, ValueError):
        return None


def reply_for(
    state: ScenarioState,
    *,
    seed: int = 7,
    latency_scale: float = 1.0,
    clock: Callable[[], float] = time.time,
) -> Callable[[RecordedRequest], FakeReply]:
    """The handler the demo's fake provider uses; reads the running incidents from ``state``.

    ``latency_scale`` multiplies every delay (tests make the provider fast with it). A request
    carrying :data:`SENT_AT_HEADER` waits until that time (``clock``, unix seconds) plus its
    scripted latency: what already passed since the app made the call is not waited again.
    """
    rng = random.Random(seed)
    lock = threading.Lock()  # handler calls come from the server's threads

    def reply(request: RecordedRequest) -> FakeReply:
        body = request.body if isinstance(request.body, dict) else {}
        model = str(body.get("model", ""))
        active = state.active
        text = _messages_text(body)
        sent = _sent_at(request)

        def left(delay: float) -> float:  # what is left of ``delay`` since the app made the call
            return delay if sent is None else max(0.0, sent + delay - clock())

        with lock:
            if JUDGE_MARKER in text:
                return _judge_verdict(rng, text)
            if request.path.endswith("/embeddings"):
                return FakeReply(latency=0.01)
            latency = latency_scale * _lognormal(rng, _LATENCY.get(model, 0.5))
            if "error_burst" in active and model == "gpt-4o-mini" and rng.random() < 0.35:
                return FakeReply(status=rng.choice((500, 503)), latency=left(latency / 3))
            stream = bool(body.get("stream"))
            response_model = None
            if "quality_regression" in active and model == "gpt-4o-mini":
                answer = rng.choice(BAD_ANSWERS)
                response_model = WORSE_MODEL  # the provider routes to a weaker model, and says so
            elif model.startswith("claude"):
                answer = rng.choice(SUMMARIES)
            else:
                answer = rng.choice(GOOD_ANSWERS)
            if "silent_model_change" in active and model == "claude-haiku-4-5":
                response_model = "claude-3-5-haiku"
            if stream:
                ttft = latency_scale * _lognormal(rng, _TTFT)
                chunks = 8
                return FakeReply(
                    text=answer,
                    model=response_model,
                    latency=0.0,
                    time_to_first_token=left(ttft),
                    chunk_delay=max(0.0, (latency - ttft) / chunks),
                    chunks=chunks,
                )
            return FakeReply(text=answer, model=response_model, latency=left(latency))

    return reply
