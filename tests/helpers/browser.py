"""A headless Chromium for the tests of the HTML pages, and a watch on what a page reports.

The system Chromium (``/usr/bin/chromium``, or the path in ``DINAT_REF_CHROMIUM``) is used
when present, else Playwright's own; the tests skip, saying why, only when neither starts.
``conftest.py`` makes the ``browser`` fixture available to every test module.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest


def chromium_path() -> str | None:
    """The system Chromium, or None when there is none (then Playwright's own is tried)."""
    for path in (os.environ.get("DINAT_REF_CHROMIUM"), "/usr/bin/chromium", "/usr/bin/chromium-browser",
                 shutil.which("chromium"), shutil.which("chromium-browser"), shutil.which("google-chrome")):
        if path and Path(path).exists():
            return path
    return None


@pytest.fixture(scope="module")
def browser():
    """One Chromium per test module, closed after it; skips when none can be started."""
    sync_api = pytest.importorskip("playwright.sync_api", reason="Playwright for Python is not installed")
    path = chromium_path()
    pw = sync_api.sync_playwright().start()
    try:
        try:
            kwargs = {"executable_path": path, "args": ["--no-sandbox"]} if path else {}
            b = pw.chromium.launch(**kwargs)
        except Exception as err:  # noqa: BLE001 - any failure to start means: no browser here
            pytest.skip(f"no Chromium could be started (system Chromium: {path or 'not found'}): {err}")
        yield b
        b.close()
    finally:
        pw.stop()


def watch_problems(page, local: tuple[str, ...] = ("file:",)) -> list[str]:
    """Collect every console error, page error and request to anything but ``local`` URLs.

    Args:
        page: a Playwright page, before it loads anything.
        local: URL prefixes the page may request.

    Returns:
        The list the problems are appended to, as they happen.
    """
    problems: list[str] = []

    def on_console(msg):
        if msg.type == "error":
            problems.append(f"console.{msg.type}: {msg.text}")

    def on_request(request):
        if not request.url.startswith(local):
            problems.append(f"request: {request.url}")

    page.on("console", on_console)
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    page.on("request", on_request)
    return problems
