"""The local stack behind ``llmpulse up`` / ``llmpulse down``: Prometheus, Alertmanager, the
collector, the processor, a webhook sink and the fake provider as child processes. Only the
CLI (and the tests) import this package.
"""

__all__ = ["components", "local"]
