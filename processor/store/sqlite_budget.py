"""The judge's daily budget in the SQLite quality file: one ledger for every process on the file.

``BEGIN IMMEDIATE`` takes SQLite's write lock before the check, so the check and the
reservation are one step for every connection to the file (see
:class:`~llmpulse.processor.store.protocols.BudgetLedger` for the semantics).
"""

from __future__ import annotations

import threading
from pathlib import Path

from llmpulse.processor.quality.store import open_database
from llmpulse.processor.store.protocols import Admission

__all__ = ["ADMIT_SQL", "BUDGET_TABLE", "SETTLE_SQL", "SqliteBudgetLedger"]

BUDGET_TABLE = """
CREATE TABLE IF NOT EXISTS judge_budget (
    day INTEGER PRIMARY KEY,
    tokens BIGINT NOT NULL DEFAULT 0,
    usd DOUBLE PRECISION NOT NULL DEFAULT 0,
    calls BIGINT NOT NULL DEFAULT 0,
    reserved_tokens BIGINT NOT NULL DEFAULT 0,
    reserved_usd DOUBLE PRECISION NOT NULL DEFAULT 0
);
"""
# The reservation is the mean settled cost of the day's paid calls (integer tokens).
_MEAN_TOKENS = "CASE WHEN calls > 0 THEN tokens / calls ELSE 0 END"
_MEAN_USD = "CASE WHEN calls > 0 THEN usd / calls ELSE 0.0 END"
ADMIT_SQL = (
    f"UPDATE judge_budget SET reserved_tokens = reserved_tokens + {_MEAN_TOKENS},"
    f" reserved_usd = reserved_usd + {_MEAN_USD}"
    " WHERE day = %s AND tokens + reserved_tokens < %s AND usd + reserved_usd < %s"
    f" RETURNING {_MEAN_TOKENS}, {_MEAN_USD}"
)
"""Check and reserve in one statement (``%s``: day, max tokens, max USD)."""
SETTLE_SQL = (
    "UPDATE judge_budget SET tokens = tokens + %s, usd = usd + %s, calls = calls + %s,"
    " reserved_tokens = MAX(0, reserved_tokens - %s), reserved_usd = MAX(0.0, reserved_usd - %s)"
    " WHERE day = %s"
)
"""Add a call's cost and release its reservation (``%s``: tokens, usd, paid 0|1, reserved
tokens, reserved usd, day). ``MAX`` is ``GREATEST`` in PostgreSQL."""


class SqliteBudgetLedger:
    """The ledger in the ``judge_budget`` table of the SQLite file at ``path``."""

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        self._lock = threading.Lock()
        self._db = open_database(self.path, BUDGET_TABLE)

    def close(self) -> None:
        """Close the connection."""
        with self._lock:
            self._db.close()

    def admit(self, day: int, max_tokens: int, max_usd: float) -> Admission | None:
        """Let one call through if the day's budget allows it, reserving its expected cost."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.execute("INSERT OR IGNORE INTO judge_budget (day) VALUES (?)", (day,))
                row = self._db.execute(ADMIT_SQL.replace("%s", "?"), (day, max_tokens, max_usd)).fetchone()
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return None if row is None else Admission(day, int(row[0]), float(row[1]))

    def settle(self, admission: Admission, tokens: int, usd: float) -> None:
        """Record what an admitted call cost (0 when it was never paid for)."""
        paid = 1 if tokens or usd else 0
        args = (tokens, usd, paid, admission.tokens, admission.usd, admission.day)
        with self._lock:
            self._db.execute(SETTLE_SQL.replace("%s", "?"), args)

    def spent(self, day: int) -> tuple[int, float]:
        """(tokens, USD) settled on ``day``."""
        with self._lock:
            row = self._db.execute("SELECT tokens, usd FROM judge_budget WHERE day = ?", (day,)).fetchone()
        return (0, 0.0) if row is None else (int(row[0]), float(row[1]))
