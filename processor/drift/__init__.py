"""Input drift: per-feature embedding and text statistics against a frozen reference,
charted with EWMA, persisted across restarts, with its admin routes and CLI
(``llmpulse drift``). See docs/drift.md.
"""

__all__ = [
    "admin",
    "cli",
    "embedders",
    "engine",
    "extension",
    "input",
    "listener",
    "metric_names",
    "metrics",
    "persist",
    "state",
    "stats",
    "synthetic",
]
