"""Conversations (sessions) from the conversation id spans carry, closed after inactivity.

A session is keyed by service, environment and conversation id (``gen_ai.conversation.id``,
OpenInference ``session.id``, OpenLLMetry's ``session_id``/``conversation_id``/``chat_id``
association properties, ``llmpulse.context(conversation_id=...)``). A *turn* is one trace: an
agent run of five LLM calls is one turn, a chat app's one call per message is one turn each. A
session closes ``session_timeout_s`` after its last span arrived (processor clock); then its
turns, duration (first span start to last span end), cost and whether it was *abandoned after
the first AI response* (one turn, answered by at least one LLM call that did not fail) are
counted under its feature (the first feature its calls named).

At most ``max_sessions`` are open: a new one closes the least recently active early (counted
as ``session_cap``), so a client sending a new conversation id per call costs bounded memory and
shows in that counter and in a surge of one-turn sessions.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable

from llmpulse.processor.agents.settings import AgentSettings
from llmpulse.processor.metrics.names import UNKNOWN_VALUE

__all__ = ["Session", "SessionTracker"]

_RECENT_TRACES = 8  # traces remembered per session to tell a new turn from the same one


class Session:
    """One conversation's running totals."""

    __slots__ = (
        "answered",
        "cost_usd",
        "environment",
        "feature",
        "first_ns",
        "last_ns",
        "last_seen",
        "recent",
        "service",
        "turns",
    )

    def __init__(self, service: str, environment: str, now: float) -> None:
        self.service = service
        self.environment = environment
        self.feature = ""
        self.first_ns = 0
        self.last_ns = 0
        self.last_seen = now
        self.turns = 0
        self.recent: list[bytes] = []
        self.cost_usd = 0.0
        self.answered = False  # the first turn had an LLM call that did not fail

    @property
    def duration_s(self) -> float:
        """First span start to last span end."""
        return max(0, self.last_ns - self.first_ns) / 1e9

    @property
    def abandoned(self) -> bool:
        """One turn, answered: the user left after the first AI response."""
        return self.turns == 1 and self.answered


class SessionTracker:
    """Open sessions, least recently active first; everything on the processor's event loop."""

    def __init__(self, settings: AgentSettings, clock: Callable[[], float]) -> None:
        self.settings = settings
        self._clock = clock
        self._open: OrderedDict[tuple[str, str, str], Session] = OrderedDict()
        self.evicted = 0
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
    ) -> None:
        """One span of a conversation: an LLM call (``answered`` says whether it succeeded) or a run."""
        key = (service, environment, conversation_id)
        sessions = self._open
        now = self._clock()
        session = sessions.get(key)
        if session is None:
            if len(sessions) >= self.settings.max_sessions:
                _old_key, old = sessions.popitem(last=False)
                self.evicted += 1
                self._closed.append(old)
            session = sessions[key] = Session(service, environment, now)
            session.first_ns = start_ns
        else:
            sessions.move_to_end(key)
            session.last_seen = now
        if trace_id not in session.recent:
            session.turns += 1
            session.recent.append(trace_id)
            if len(session.recent) > _RECENT_TRACES:
                del session.recent[0]
        session.first_ns = min(session.first_ns, start_ns)
        session.last_ns = max(session.last_ns, end_ns)
        session.cost_usd += cost_usd
        if answered and session.turns == 1:
            session.answered = True
        if not session.feature and feature and feature != UNKNOWN_VALUE:
            session.feature = feature

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
            self._closed.append(session)

    def flush(self) -> None:
        """Close every session (at shutdown)."""
        self._closed.extend(self._open.values())
        self._open.clear()

    def take(self) -> list[Session]:
        """The sessions closed since the last call."""
        closed, self._closed = self._closed, []
        return closed
