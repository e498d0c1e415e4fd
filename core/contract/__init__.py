"""The llmpulse contract: everything that crosses a process boundary (standard library only).

* :mod:`~llmpulse.contract.attributes` - span attribute keys the instrumentation writes and
  the processor reads.
* :mod:`~llmpulse.contract.sampling` - the deterministic sampling decision both sides share.
* :mod:`~llmpulse.contract.redaction` - secret and PII masking applied to captured content.
* :mod:`~llmpulse.contract.pricing` - the pricing table (``pricing.json``) and cost of a call.

The instrumentation and the processor both import this package and never each other.
"""

__all__ = ["attributes", "pricing", "redaction", "sampling"]
