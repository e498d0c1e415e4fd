"""Statistical process control: the EWMA chart, limits designed for estimated baselines, run lengths."""

__all__ = ["arl", "design", "ewma"]
