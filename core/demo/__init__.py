"""``llmpulse demo``: the local stack, a scripted day of traffic with incidents, and the
detection report. Only the CLI imports this package.
"""

__all__ = ["app", "charts", "provider", "report", "rules", "runner", "scenario", "sources", "view"]
