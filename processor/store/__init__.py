"""The processor's durable state behind one interface, in SQLite (one process, the default) or
PostgreSQL (several replicas sharing one state).

What is kept: flagged samples and human labels, SPC chart snapshots and ``llmpulse spc reset``
requests, the judge's daily budget, the drift engine's frozen references, and captured sessions.
:func:`~llmpulse.processor.store.factory.open_store` picks the implementation from the
configured location (a file path, or a ``postgresql://`` URL in ``[quality] store_url`` /
``LLMPULSE_STORE_URL``); the engines and the CLI see only the protocols of
:mod:`~llmpulse.processor.store.protocols`. See docs/store.md.

Modules: ``protocols`` (the interface and the errors), ``factory`` (open by path or URL),
``fencing`` (owner epochs: a stale owner's save of a key's state is refused),
``sqlite_budget`` (the budget ledger in the SQLite file), ``sqlite_references`` (drift
references in the SQLite file), ``sessions`` (captured sessions, both databases),
``postgres`` (the PostgreSQL implementation), ``migrations``
(its versioned schema).
"""

__all__ = [
    "factory",
    "fencing",
    "migrations",
    "postgres",
    "protocols",
    "sessions",
    "sqlite_budget",
    "sqlite_references",
]
