"""The hostile suite runs against the processor fixtures of tests/processor."""

from tests.processor.conftest import make_service, service

__all__ = ["make_service", "service"]
