"""The admin port: ``/metrics``, ``/api/status``, ``/healthz``, ``/readyz``, the engines'
routes, who may use them (``guard``), and the client of ``/api/status`` behind ``llmpulse status``.
"""

__all__ = ["guard", "handler", "status_client"]
