"""Deterministic sampling shared by instrumentation and processor.

A trace is sampled when the low 56 bits of its trace id, which W3C trace context
level 2 makes random, fall below ``rate * 2**56``. Both sides call this one
function, so the span that carried content and the processor's judge agree on
every trace, and raising the rate only ever adds traces.
"""

from __future__ import annotations

import hashlib

DEFAULT_CONTENT_SAMPLE_RATE = 0.1
"""Share of traces whose LLM spans carry content in ``sampled`` mode unless
``LLMPULSE_SAMPLE_RATE`` says otherwise: above the judge's default rate (0.05), so every
trace the judge samples has content."""

_RANDOM_BITS = 56
_MASK = (1 << _RANDOM_BITS) - 1
_SCALE = 1 << _RANDOM_BITS


def is_sampled(trace_id: int, rate: float) -> bool:
    """Return the sampling decision for ``trace_id`` (a 128-bit int) at ``rate`` in [0, 1]."""
    if rate >= 1.0:
        return True
    if rate <= 0.0:
        return False
    return (trace_id & _MASK) < int(rate * _SCALE)


def is_sampled_bytes(trace_id: bytes, rate: float) -> bool:
    """Same as :func:`is_sampled` for the 16-byte trace id found in OTLP."""
    return is_sampled(int.from_bytes(trace_id, "big"), rate)


def is_sampled_key(key: str, rate: float) -> bool:
    """Same as :func:`is_sampled` for a string key (a conversation id): the decision follows a
    hash of the key, so every process, and every turn of one conversation, agrees on it."""
    if rate >= 1.0:
        return True
    if rate <= 0.0:
        return False
    digest = hashlib.blake2b(key.encode("utf-8", "surrogatepass"), digest_size=8).digest()
    return (int.from_bytes(digest, "big") & _MASK) < int(rate * _SCALE)
