"""Metrics derived from records: names and label sets, aggregates, rolling windows, exposition.

:mod:`~llmpulse.processor.metrics.names` is the one table of every metric the processor
exports (dashboards and rules are tested against it).
"""

__all__ = ["derived", "exposition", "names", "windows"]
