"""Test doubles of the world around llmpulse, shipped so the demo and users' tests can use them.

* :mod:`~llmpulse.testing.fake_provider` - a local OpenAI/Anthropic-compatible HTTP server with
  scripted replies (``llmpulse fake-provider``); its wire formats live in ``openai_api``,
  ``openai_responses``, ``anthropic_api`` and ``fake_reply``; it stands in for the judge
  (``fake_judge``) and serves reply scripts (``script``, ``llmpulse fake-provider --script``).
* :mod:`~llmpulse.testing.webhook_sink` - an Alertmanager webhook receiver that records notifications.
* :mod:`~llmpulse.testing.otlp` - builders of OTLP spans and export requests (needs the
  ``processor`` extra; not imported here, so the rest works with the base install).
* :mod:`~llmpulse.testing.clock` - :class:`~llmpulse.testing.clock.FakeClock`, moved by hand.
* :mod:`~llmpulse.testing.polling` - ``wait_until``: a bounded wait for a condition.

This package imports only :mod:`llmpulse.contract` of llmpulse (``tests/test_layout.py``).
"""

__all__ = [
    "anthropic_api",
    "cli",
    "clock",
    "fake_judge",
    "fake_provider",
    "fake_reply",
    "openai_api",
    "openai_responses",
    "otlp",
    "polling",
    "script",
    "webhook_sink",
]
