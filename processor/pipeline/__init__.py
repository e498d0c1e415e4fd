"""From OTLP spans to records: the bounded queue, span normalisation, de-duplication.

:class:`Pipeline` owns the queue between the receivers and the worker; :func:`normalize_span`
turns a span from any GenAI instrumentation into an :class:`LLMCall`, :class:`StepRun` or
:class:`Feedback` record; :class:`Deduplicator` counts a call seen twice once;
:func:`resource_labels` reads the service of a resource; :class:`CallPricer` prices the calls
that arrive without a cost.
"""

__all__ = ["dedup", "normalize", "pricing", "queue", "records", "resource", "sentiment", "wire"]
