"""The demo's on-call action (re-freezing a drift reference) passes the admin port's guard."""

from __future__ import annotations

import asyncio

from prometheus_client import CollectorRegistry

from llmpulse.demo.sources import post
from llmpulse.processor.drift.admin import REFREEZE_PATH
from llmpulse.processor.drift.engine import DriftEngine, DriftSample
from llmpulse.processor.drift.extension import drift_extension
from llmpulse.processor.service import ProcessorService
from llmpulse.processor.settings import Settings


async def test_the_demo_refreeze_request_is_accepted_by_a_real_processor() -> None:
    drift = DriftEngine(registry=CollectorRegistry())
    service = ProcessorService(
        Settings(grpc_port=0, http_port=0, admin_port=0, drain_timeout=1.0),
        extensions=[drift_extension(drift)],
    )
    await service.startup()
    try:
        drift.observe(DriftSample("support", "How do I reset my password?"))
        drift.run_once()
        url = f"http://127.0.0.1:{service.admin.port}{REFREEZE_PATH}?feature=support&from=next"
        assert await asyncio.to_thread(post, url)  # was refused: 415 for urllib's default form type
    finally:
        await service.shutdown()
