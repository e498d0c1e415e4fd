"""Conversations (sessions) from the conversation id spans carry, closed after inactivity.

A session is keyed by service, environment and conversation id (``gen_ai.conversation.id``,
OpenInference ``session.id``, OpenLLMetry's ``session_id``/``conversation_id``/``chat_id``
association properties, ``llmpulse.context(conversation_id=...)``). A *turn* is one trace: an
agent run of five LLM calls is one turn, a chat app's one call per message is one turn each. A
session closes ``session_timeout_s`` after its last span arrived (processor clock); then its
turns, duration (first span start to last span end), cost and whether it was *abandoned after
the first AI response* (one turn, answered by at least one LLM call that did not fail) are
counted under its feature (the first feature its calls named).

Feedback spans (``llmpulse.feedback``) given in a conversation count for it without making a
turn: whether the session had a correction, a follow-up, explicit feedback (thumbs, rating) and
whether that feedback was mostly positive. Feedback naming a conversation that is not open (it
closed, or never had a call) is counted as unmatched.

A share ``judge_rate`` of conversations, chosen by a hash of the conversation id
(:func:`~llmpulse.contract.sampling.is_sampled_key`), keeps a transcript: per turn, the last
user message and the answer of the turn's last LLM call that carried content, each clipped to
``judge_chars``, at most ``judge_turns`` turns (the oldest go first). At close, a transcript with
every turn present is handed to the session judge; at most ``max_judged_sessions`` transcripts are
held at once. The transcript also keeps each turn's figures (start, end, calls, model, tokens,
cost, error), so a session with content can be stored whole (``capture_sessions``). A session
that was not sampled starts a transcript when one of its calls is flagged
(:meth:`SessionTracker.promote`): from that call's turn on, and it is never judged.

At most ``max_sessions`` are open: a new one closes the least recently active early (counted
as ``session_cap``), so a client sending a new conversation id per call costs bounded memory and
shows in that counter and in a surge of one-turn sessions.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable

from llmpulse.contract import attributes as A
from llmpulse.contract.sampling import is_sampled_key
from llmpulse.processor.agents.settings import AgentSettings
from llmpulse.processor.metrics.names import UNKNOWN_VALUE

__all__ = ["Session", "SessionTracker", "Turn"]

_RECENT_TRACES = 8  # traces remembered per session to tell a new turn from the same one
_EXPLICIT = frozenset({A.FEEDBACK_THUMBS, A.FEEDBACK_RATING})


class Turn:
    """One turn of a sampled session's transcript: the user's message, the answer, and the
    turn's calls (timing, model, tokens, cost, whether one failed)."""

    __slots__ = (
        "answer",
        "calls",
        "content",
        "cost_usd",
        "end_ns",
        "error",
        "input_tokens",
        "model",
        "number",
        "output_tokens",
        "start_ns",
        "user",
    )

    def __init__(self, start_ns: int, end_ns: int, number: int) -> None:
        self.number = number  # the turn's number in the session, from 1
        self.user = ""
        self.answer = ""
        self.content = False  # a call of the turn carried content
        self.start_ns = start_ns
        self.end_ns = end_ns
        self.model = ""
        self.calls = 0
        self.input_tokens = 0
        self.output_tokens = 0
        self.cost_usd = 0.0
        self.error = False


class Session:
    """One conversation's running totals."""

    __slots__ = (
        "answered",
        "conversation_id",
        "corrections",
        "cost_usd",
        "environment",
        "explicit",
        "feature",
        "first_ns",
        "follow_ups",
        "last_ns",
        "last_seen",
        "last_trace",
        "positive",
        "promoted",
        "recent",
        "service",
        "transcript",
        "turns",
        "turns_clipped",
    )

    def __init__(self, service: str, environment: str, conversation_id: str, now: float) -> None:
        self.service = service
        self.environment = environment
        self.conversation_id = conversation_id
        self.feature = ""
        self.first_ns = 0
        self.last_ns = 0
        self.last_seen = now
        self.turns = 0
        self.recent: list[bytes] = []
        self.last_trace = b""
        self.cost_usd = 0.0
        self.answered = False  # the first turn had an LLM call that did not fail
        self.explicit = 0  # thumbs and ratings given in the session
        self.positive = 0  # ... of them positive
        self.corrections = 0
        self.follow_ups = 0
        # trace id -> turn, for a session sampled for judging; None when it is not
        self.transcript: dict[bytes, Turn] | None = None
        self.turns_clipped = 0  # oldest turns dropped from the transcript
        self.promoted = False  # not sampled: keeps its turns from a flagged call on (never judged)

    @property
    def duration_s(self) -> float:
        """First span start to last span end."""
        return max(0, self.last_ns - self.first_ns) / 1e9

    @property
    def abandoned(self) -> bool:
        """One turn, answered: the user left after the first AI response."""
        return self.turns == 1 and self.answered

    @property
    def feedback_positive(self) -> bool:
        """Explicit feedback was given and more than half of it was positive."""
        return self.explicit > 0 and 2 * self.positive > self.explicit

    @property
    def judgeable(self) -> bool:
        """A transcript is held and has every turn (none without content, none clipped)."""
        t = self.transcript
        return (
            t is not None
            and not self.promoted
            and len(t) + self.turns_clipped >= self.turns > 0
            and all(turn.content for turn in t.values())
        )


class SessionTracker:
    """Open sessions, least recently active first; everything on the processor's event loop."""

    def __init__(self, settings: AgentSettings, clock: Callable[[], float]) -> None:
        self.settings = settings
        self._clock = clock
        self._open: OrderedDict[tuple[str, str, str], Session] = OrderedDict()
        self.evicted = 0
        self.feedback_unmatched = 0
        self.judge_cap_refused = 0  # sampled sessions not judged: max_judged_sessions were held
        self._judged_open = 0
        self._closed: list[Session] = []

    @property
    def active(self) -> int:
        """Sessions open now."""
        return len(self._open)

    def observe(
        self,
        service: str,
        environment: str,
        conversation_id: str,
        *,
        feature: str,
        trace_id: bytes,
        start_ns: int,
        end_ns: int,
        cost_usd: float = 0.0,
        answered: bool | None = None,
    ) -> Session:
        """One span of a conversation: an LLM call (``answered`` says whether it succeeded) or a run."""
        key = (service, environment, conversation_id)
        sessions = self._open
        now = self._clock()
        session = sessions.get(key)
        if session is None:
            if len(sessions) >= self.settings.max_sessions:
                _old_key, old = sessions.popitem(last=False)
                self.evicted += 1
                self._close(old)
            session = sessions[key] = Session(service, environment, conversation_id, now)
            session.first_ns = start_ns
            self._maybe_sample(session)
        else:
            sessions.move_to_end(key)
            session.last_seen = now
        if trace_id != session.last_trace and trace_id not in session.recent:
            session.turns += 1
            session.recent.append(trace_id)
            if len(session.recent) > _RECENT_TRACES:
                del session.recent[0]
        session.last_trace = trace_id
        session.first_ns = min(session.first_ns, start_ns)
        session.last_ns = max(session.last_ns, end_ns)
        session.cost_usd += cost_usd
        if answered and session.turns == 1:
            session.answered = True
        if not session.feature and feature and feature != UNKNOWN_VALUE:
            session.feature = feature
        return session

    def _maybe_sample(self, session: Session) -> None:
        s = self.settings
        if not is_sampled_key(session.conversation_id, s.judge_rate):
            return
        if self._judged_open >= s.max_judged_sessions:
            self.judge_cap_refused += 1
            return
        session.transcript = {}
        self._judged_open += 1

    def promote(
        self, service: str, environment: str, conversation_id: str, trace_id: bytes
    ) -> Session | None:
        """A flagged call of an open session that holds no transcript: it starts one now (its
        earlier turns count as clipped), within ``max_judged_sessions``; None when the session
        is not open, already holds one, or the cap is reached (counted as ``judge_cap``)."""
        session = self._open.get((service, environment, conversation_id))
        if session is None or session.transcript is not None:
            return None
        if self._judged_open >= self.settings.max_judged_sessions:
            self.judge_cap_refused += 1
            return None
        session.transcript = {}
        session.promoted = True
        session.turns_clipped = _number(session, trace_id) - 1  # the turns before the flagged call's
        self._judged_open += 1
        return session

    def add_call(
        self,
        session: Session,
        trace_id: bytes,
        *,
        start_ns: int,
        end_ns: int,
        model: str,
        input_tokens: int,
        output_tokens: int,
        cost_usd: float,
        error: bool,
        text: tuple[str, str] | None,
    ) -> None:
        """One LLM call of a sampled ``session``: its figures add to its turn's, and ``text``
        (user message, answer; None without content) replaces the turn's when it ends later."""
        transcript = session.transcript
        if transcript is None:
            return
        turn = transcript.get(trace_id)
        if turn is None:
            turn = transcript[trace_id] = Turn(start_ns, end_ns, _number(session, trace_id))
            if len(transcript) > self.settings.judge_turns:
                del transcript[next(iter(transcript))]
                session.turns_clipped += 1
        latest = end_ns >= turn.end_ns
        turn.start_ns = min(turn.start_ns, start_ns)
        turn.end_ns = max(turn.end_ns, end_ns)
        turn.calls += 1
        turn.input_tokens += input_tokens
        turn.output_tokens += output_tokens
        turn.cost_usd += cost_usd
        turn.error = turn.error or error
        if latest or not turn.model:
            turn.model = model
        if text is not None and (latest or not turn.content):
            limit = self.settings.judge_chars
            user, answer = text
            turn.user = user[:limit] or turn.user
            turn.answer = answer[:limit]
            turn.content = True

    def feedback(
        self, service: str, environment: str, conversation_id: str, kind: str, sentiment: str
    ) -> bool:
        """One feedback event in a conversation; False (counted) when the session is not open."""
        key = (service, environment, conversation_id)
        session = self._open.get(key)
        if session is None:
            self.feedback_unmatched += 1
            return False
        self._open.move_to_end(key)
        session.last_seen = self._clock()
        if kind in _EXPLICIT:
            session.explicit += 1
            session.positive += sentiment == "positive"
        elif kind == A.FEEDBACK_CORRECTION:
            session.corrections += 1
        elif kind == A.FEEDBACK_FOLLOW_UP:
            session.follow_ups += 1
        return True

    def _close(self, session: Session) -> None:
        if session.transcript is not None:
            self._judged_open -= 1
        self._closed.append(session)

    def tick(self) -> None:
        """Close the sessions inactive for ``session_timeout_s``."""
        now = self._clock()
        timeout = self.settings.session_timeout_s
        sessions = self._open
        while sessions:
            key, session = next(iter(sessions.items()))
            if now - session.last_seen < timeout:
                break
            del sessions[key]
            self._close(session)

    def flush(self) -> None:
        """Close every session (at shutdown)."""
        for session in self._open.values():
            self._close(session)
        self._open.clear()

    def take(self) -> list[Session]:
        """The sessions closed since the last call."""
        closed, self._closed = self._closed, []
        return closed


def _number(session: Session, trace_id: bytes) -> int:
    """The number in ``session`` of the turn of ``trace_id``: by its place among the recent
    turns' traces, else the latest turn's."""
    recent = session.recent
    if trace_id in recent:
        return session.turns - (len(recent) - 1 - recent.index(trace_id))
    return session.turns
