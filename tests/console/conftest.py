"""Fixtures for the console tests: Debian's chromium driven by Playwright, a flagged-sample
store, a metrics endpoint Prometheus scrapes, and the console itself as a real server."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from llmpulse.stack import components

CHROMIUM = Path("/usr/bin/chromium")
DOCS_SCREENSHOTS = components.REPO_ROOT / "docs" / "console"


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Headless Debian chromium through Playwright (never a browser Playwright downloads).

    Module-scoped: Playwright's sync API runs an event loop of its own while it is open, so it
    is closed before tests of other modules that run ``asyncio.run``."""
    if not CHROMIUM.exists():
        pytest.fail(
            f"{CHROMIUM} is not installed: run scripts/bootstrap.sh (or `apt-get install chromium`)",
            pytrace=False,
        )
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail(
            "playwright is not installed: run scripts/bootstrap.sh (pip install -e '.[dev]')", pytrace=False
        )
    with sync_playwright() as p:
        chromium = p.chromium.launch(
            executable_path=str(CHROMIUM), args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"]
        )
        yield chromium
        chromium.close()


ConsoleFactory = Callable[..., tuple[components.ManagedProcess, str]]


@pytest.fixture
def start_console(tmp_path: Path) -> Iterator[ConsoleFactory]:
    """Start ``llmpulse console ARGS`` as a child process on a free loopback port; returns
    (process, base URL). Stopped at teardown."""
    started: list[components.ManagedProcess] = []

    def factory(*args: str, port: int | None = None) -> tuple[components.ManagedProcess, str]:
        port = port or components.free_port()
        process = components.ManagedProcess(
            "console",
            [sys.executable, "-m", "llmpulse.cli", "console", "--port", str(port), *args],
            f"http://127.0.0.1:{port}/healthz",
            tmp_path / f"console-{port}.log",
        )
        process.start(timeout=30)
        started.append(process)
        return process, f"http://127.0.0.1:{port}"

    yield factory
    for process in started:
        process.stop()
