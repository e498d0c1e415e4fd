"""The store interface: what the quality engine and the CLI need from durable state.

Three parts, each a :class:`typing.Protocol` the SQLite and PostgreSQL implementations both
satisfy, and :class:`StateStore` holding one of each::

    StateStore
     +-- flagged: FlaggedSamples   flagged samples, human labels, judge agreement, retention
     +-- charts:  ChartSnapshots   SPC chart snapshots by (service, feature, statistic), resets,
     |                             owner epochs (a stale owner's save is refused)
     +-- budget:  BudgetLedger     the judge's spend per UTC day, admitted atomically
     +-- references: DriftReferences  the drift engine's frozen references, a blob per (service, feature)
     +-- sessions: SessionTranscripts  captured sessions: turns, totals, session-judge verdict

Errors::

    StoreError                  anything the store could not do, with what to do about it
     +-- StoreUnavailable       the database cannot be reached or opened
     +-- StoreSchemaError       the schema is newer than this llmpulse knows
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from llmpulse.processor.quality.chart_store import ChartKey
from llmpulse.processor.quality.store import FlaggedRecord, StoredSample
from llmpulse.processor.store.sessions import SessionRecord, SessionVerdict, StoredSession

__all__ = [
    "Admission",
    "BudgetLedger",
    "ChartKey",
    "ChartSnapshots",
    "DriftReferences",
    "FlaggedSamples",
    "ResetRequest",
    "SessionTranscripts",
    "StateStore",
    "StoreError",
    "StoreReadOnly",
    "StoreSchemaError",
    "StoreUnavailable",
]

ResetRequest = tuple[str | None, str, str | None]
"""(service or None for every service, feature, statistic or None for all)."""


class StoreError(Exception):
    """The store could not do what was asked; the message says what to do."""


class StoreUnavailable(StoreError):
    """The database cannot be reached or opened."""


class StoreReadOnly(StoreError):
    """The store may be read but not written (a read-only database user or file)."""


class StoreSchemaError(StoreError):
    """The database's schema is newer than this version of llmpulse knows."""


@runtime_checkable
class FlaggedSamples(Protocol):
    """Flagged (and audit) samples with their human labels."""

    def add(self, record: FlaggedRecord) -> int: ...
    def add_many(self, records: Sequence[FlaggedRecord]) -> None: ...
    def query(
        self,
        *,
        service: str | None = None,
        feature: str | None = None,
        since: float | None = None,
        limit: int | None = 20,
        label: str | None = None,
        include_audit: bool = False,
    ) -> list[StoredSample]: ...
    def get(self, sample_id: int) -> StoredSample | None: ...
    def label(
        self, sample_id: int, label: str, note: str | None = None, *, now: float | None = None
    ) -> bool: ...
    def agreement(self) -> dict[tuple[str, str], tuple[int, int]]: ...
    def prune(self, *, now: float | None = None) -> int: ...
    def count(self) -> int: ...
    def close(self) -> None: ...


@runtime_checkable
class ChartSnapshots(Protocol):
    """SPC chart snapshots keyed by (service, feature, statistic) and pending reset requests.

    ``claim`` takes (service, feature) keys over (a Kafka owner topic gave this process their
    partition): it raises their owner epochs, and from then on ``save_charts`` refuses, and
    returns, the charts of keys another process claimed after this one (a stale owner's save,
    :mod:`~llmpulse.processor.store.fencing`). Keys never claimed are saved unfenced.
    """

    def claim(
        self, keys: Collection[tuple[str, str]], *, now: float | None = None
    ) -> dict[tuple[str, str], int]: ...
    def save_charts(
        self, charts: dict[ChartKey, dict[str, Any]], *, now: float | None = None
    ) -> list[ChartKey]: ...
    def load_charts(self) -> dict[ChartKey, dict[str, Any]]: ...
    def request_reset(
        self, feature: str, statistic: str | None = None, *, service: str | None = None
    ) -> int: ...
    def take_resets(self) -> list[ResetRequest]: ...
    def close(self) -> None: ...


@dataclass(frozen=True, slots=True)
class Admission:
    """One judge call let through by :meth:`BudgetLedger.admit`, with the spend reserved for it."""

    day: int
    """UTC day number (Unix seconds // 86400)."""
    tokens: int
    usd: float


@runtime_checkable
class BudgetLedger(Protocol):
    """The judge's spend per UTC day, one ledger for every process that shares the store.

    :meth:`admit` is the atomic check-and-charge: in one step it checks that the day's spend plus
    what is reserved for calls in flight is under both limits, and reserves the mean cost of the
    day's calls so far for this one. :meth:`settle` replaces the reservation by what the call
    cost. So concurrent callers, in one process or many, see each other's calls in flight; the
    day may overshoot only by how much the last admitted calls cost above the mean.
    """

    def admit(self, day: int, max_tokens: int, max_usd: float) -> Admission | None: ...
    def settle(self, admission: Admission, tokens: int, usd: float) -> None: ...
    def spent(self, day: int) -> tuple[int, float]:
        """(tokens, USD) settled on ``day``."""
        ...

    def close(self) -> None: ...


@runtime_checkable
class DriftReferences(Protocol):
    """Frozen drift references, one opaque blob per (service, feature)
    (:func:`~llmpulse.processor.drift.persist.encode_reference` makes them); ``claim`` and the
    keys ``save_references`` refuses as :class:`ChartSnapshots` has them."""

    def claim(
        self, keys: Collection[tuple[str, str]], *, now: float | None = None
    ) -> dict[tuple[str, str], int]: ...
    def save_references(
        self, blobs: dict[tuple[str, str], bytes], *, now: float | None = None
    ) -> list[tuple[str, str]]: ...
    def load_references(self) -> dict[tuple[str, str], bytes]: ...
    def close(self) -> None: ...


@runtime_checkable
class SessionTranscripts(Protocol):
    """Captured sessions (:mod:`~llmpulse.processor.store.sessions`), bounded in content bytes."""

    def add_session(self, record: SessionRecord, *, now: float | None = None) -> int: ...
    def set_verdict(self, service: str, last_trace_id: bytes, verdict: SessionVerdict) -> bool: ...
    def sessions(
        self,
        *,
        service: str | None = None,
        feature: str | None = None,
        verdict: str | None = None,
        limit: int | None = 20,
    ) -> list[StoredSession]: ...
    def session(self, session_id: int) -> StoredSession | None: ...
    def session_of_trace(self, trace_id: bytes) -> int | None: ...
    def flagged_in_session(self, session_id: int) -> list[tuple[int, str]]: ...
    def prune_sessions(self, *, max_bytes: int, now: float | None = None) -> int: ...
    def count_sessions(self) -> int: ...
    def close(self) -> None: ...


@dataclass
class StateStore:
    """One of each part, opened on one location (see :func:`~llmpulse.processor.store.factory.open_store`)."""

    flagged: FlaggedSamples
    charts: ChartSnapshots
    budget: BudgetLedger
    references: DriftReferences
    sessions: SessionTranscripts
    location: str
    """Where the state lives, safe to log (a URL's password is masked)."""

    def close(self) -> None:
        """Close every part."""
        for part in (self.sessions, self.references, self.budget, self.charts, self.flagged):
            part.close()

    def __enter__(self) -> StateStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
