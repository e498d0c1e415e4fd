"""Statistical process control: the EWMA chart and its run-length calculations."""

__all__ = ["arl", "ewma"]
