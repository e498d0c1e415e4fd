"""Owner epochs: a (service, feature)'s saved state is written only by its current owner.

With a Kafka owner topic a key moves between replicas; a replica that lost the key's partition
without knowing yet (a zombie: paused past its session timeout, its tick still running) must not
write its older charts or reference over what the new owner saved. So each take-over *claims*
the key in the store: ``key_owners`` holds one epoch per (state table, service, feature), and a
claim raises it by one and hands the new value to the claimer, who keeps it (:class:`Fence`).
Every save of a claimed key then checks, in the save's own transaction and with the epoch row
locked (``FOR SHARE`` in PostgreSQL, SQLite's write lock), that the stored epoch is still the
one this process holds: a newer claim means another owner took over, and the rows are refused
(returned to the engine, which counts them with reason ``stale_owner``), never written. Each
written row records the epoch it was written under (``epoch``, 0 for a save that claimed nothing).

The order that makes it safe: a claim commits before the claimer reads the state. A stale save
that committed before the claim is therefore in what the new owner reads; one that comes after
sees the new epoch and is refused; the row lock keeps the two from interleaving.

A process that never claims (one processor without Kafka, the CLI) saves unfenced, as before.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from typing import Any

__all__ = ["OWNERS_TABLE", "FeatureKey", "Fence"]

FeatureKey = tuple[str, str]
"""(service, feature)."""

OWNERS_TABLE = """
CREATE TABLE IF NOT EXISTS key_owners (
    state TEXT NOT NULL,
    service TEXT NOT NULL,
    feature TEXT NOT NULL,
    epoch BIGINT NOT NULL,
    claimed DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (state, service, feature)
);
"""
"""One epoch per (state table, service, feature); the same DDL in SQLite and PostgreSQL."""

_CLAIM = (
    "INSERT INTO key_owners (state, service, feature, epoch, claimed) VALUES (%s, %s, %s, 1, %s)"
    " ON CONFLICT (state, service, feature) DO UPDATE SET epoch = key_owners.epoch + 1,"
    " claimed = excluded.claimed RETURNING epoch"
)
_CURRENT = "SELECT service, feature, epoch FROM key_owners WHERE state = %s"
_CHUNK = 500  # keys per epoch check: well under SQLite's and PostgreSQL's parameter limits

Execute = Callable[[str, tuple[Any, ...]], Any]
"""Runs one statement with ``%s`` placeholders and returns the cursor (the caller adapts them)."""


class Fence:
    """The epochs this process claimed for the keys of one state table (``state``).

    Not locked: each store calls it under its own lock or from one thread at a time.
    """

    def __init__(self, state: str) -> None:
        self.state = state
        self.held: dict[FeatureKey, int] = {}

    def claim(self, execute: Execute, keys: Collection[FeatureKey], now: float) -> dict[FeatureKey, int]:
        """Raise each key's epoch by one and hold the new value (each statement commits alone:
        run it outside a transaction, before reading the keys' state)."""
        got: dict[FeatureKey, int] = {}
        for service, feature in sorted(set(keys)):
            (epoch,) = execute(_CLAIM, (self.state, service, feature, now)).fetchone()
            got[(service, feature)] = int(epoch)
        self.held.update(got)
        return got

    def epoch(self, key: FeatureKey) -> int:
        """The epoch a row of ``key`` is written under: the one held, 0 when never claimed."""
        return self.held.get(key, 0)

    def refused(self, execute: Execute, keys: Collection[FeatureKey], *, lock: str = "") -> set[FeatureKey]:
        """The keys among ``keys`` claimed by another process since this one claimed them. Run
        inside the save's transaction; ``lock`` (``" FOR SHARE"`` in PostgreSQL) keeps a claim
        from committing between this check and the write. One statement per
        :data:`_CHUNK` held keys (shared locks: two savers never wait on each other)."""
        held = sorted(key for key in set(keys) if key in self.held)  # the others: unfenced saves
        stale: set[FeatureKey] = set()
        for at in range(0, len(held), _CHUNK):
            chunk = held[at : at + _CHUNK]
            rows = ", ".join(["(%s, %s)"] * len(chunk))
            sql = f"{_CURRENT} AND (service, feature) IN (VALUES {rows}){lock}"
            args = (self.state, *(part for key in chunk for part in key))
            for service, feature, epoch in execute(sql, args).fetchall():
                if int(epoch) != self.held[(str(service), str(feature))]:
                    stale.add((str(service), str(feature)))
        return stale
