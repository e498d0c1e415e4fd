"""Metrics derived from records: names and label sets, aggregates, rolling windows, exposition.

:mod:`~llmpulse.processor.metrics.names` is the one table of every metric the processor
exports (dashboards and rules are tested against it). :mod:`~llmpulse.processor.metrics.writers`
writes the exposition's series; :mod:`~llmpulse.processor.metrics.shown` remembers what the last
scrape showed (the Kafka source's withheld counts).
"""

__all__ = ["derived", "exposition", "names", "shown", "windows", "writers"]
