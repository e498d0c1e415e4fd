"""The admin port: ``/metrics``, ``/api/status``, ``/healthz``, ``/readyz``, the engines'
routes, and the client of ``/api/status`` behind ``llmpulse status``.
"""

__all__ = ["handler", "status_client"]
