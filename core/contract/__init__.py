"""The llmpulse contract: everything that crosses a process boundary (standard library only).

* :mod:`~llmpulse.contract.attributes` - span attribute keys the instrumentation writes and
  the processor reads.
* :mod:`~llmpulse.contract.environment_variables` - every environment variable llmpulse reads
  or sets, one documented constant each.
* :mod:`~llmpulse.contract.finish_reasons` - the one table from providers' raw finish reasons
  to ``llmpulse.finish_reason``.
* :mod:`~llmpulse.contract.content` - the one parser of captured message content
  (``gen_ai.input.messages`` and friends, the truncation marker).
* :mod:`~llmpulse.contract.sampling` - the deterministic sampling decision both sides share.
* :mod:`~llmpulse.contract.redaction` - secret and PII masking applied to captured content.
* :mod:`~llmpulse.contract.pricing` - the pricing table (``pricing.json``) and cost of a call.

The instrumentation and the processor both import this package and never each other.
"""

__all__ = [
    "attributes",
    "content",
    "environment_variables",
    "finish_reasons",
    "pricing",
    "redaction",
    "sampling",
]
