"""The llmpulse processor: OTLP traces in, Prometheus metrics, quality verdicts and alarms out.

A span travels one way through the sub-packages::

    ingest/    OTLP/gRPC, OTLP/HTTP (protobuf and JSON) receivers: decode, admit or refuse
    kafka/     or: OTLP records from the collector's Kafka topic, one consumer-group member,
       |       offsets committed when a scrape shows their counts
    pipeline/  bounded queue, normalisation of any GenAI instrumentation's span into records,
       |       de-duplication of calls seen twice
       +--> metrics/  derived Prometheus metrics, rolling windows, exposition
       +--> quality/  cheap checks, sampled LLM judge, SPC charts, user signals, canaries,
       |              flagged samples
       +--> drift/    input drift against a frozen reference
       +--> agents/   agent runs, tool calls, runaway runs and sessions from the span tree
    spc/       the EWMA chart both quality and drift use
    store/     durable state (flagged samples, labels, SPC charts, judge budget) in SQLite or
               PostgreSQL behind one interface
    admin/     /metrics, /api/status, /healthz, /readyz and the engines' admin routes

At the top: :mod:`~llmpulse.processor.service` (the process: receivers, pipeline, admin
server), :mod:`~llmpulse.processor.settings` (configuration), :mod:`~llmpulse.processor.engines`
(the configuration's engine tables turned into extensions), :mod:`~llmpulse.processor.extension`
(the one :class:`Extension` type every engine plugs in through), :mod:`~llmpulse.processor.http_server`
(the HTTP/1.1 servers, on aiohttp) and :mod:`~llmpulse.processor.cli` (``llmpulse serve`` /
``llmpulse status``). See docs/processor.md for the tree and the path of a span.
"""

__all__ = [
    "admin",
    "agents",
    "cli",
    "drift",
    "engines",
    "extension",
    "http_server",
    "ingest",
    "kafka",
    "metrics",
    "pipeline",
    "quality",
    "service",
    "settings",
    "spc",
    "store",
]
