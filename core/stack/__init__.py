"""The local stack behind ``llmpulse up`` / ``llmpulse down``: Prometheus, Alertmanager, the
collector, the processor, a webhook sink and the fake provider as child processes. Only the
CLI (and the tests) import this package. ``files`` says where its shipped configs and its
state live, in a checkout and from an installed wheel.
"""

__all__ = [
    "collector_metrics",
    "components",
    "files",
    "kafka",
    "local",
    "pids",
    "postgres",
    "replicas",
    "victoriametrics",
]
