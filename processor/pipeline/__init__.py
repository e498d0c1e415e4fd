"""From OTLP spans to records: the bounded queue, span normalisation, de-duplication.

:class:`Pipeline` owns the queue between the receivers and the worker; :func:`normalize_span`
turns a span from any GenAI instrumentation into an :class:`LLMCall`, :class:`StepRun` or
:class:`Feedback` record; :class:`Deduplicator` counts a call seen twice once.
"""

__all__ = ["dedup", "normalize", "queue", "records"]
