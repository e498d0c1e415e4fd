"""llmpulse Grafana dashboards as code (grafana-foundation-sdk); build with ``python -m dashboards.build``."""
