"""The browser for the dashboard tests: Debian's headless Chromium, driven by Playwright.

Playwright's own browser downloads are never used (``playwright install`` is not
run): ``.ci/run`` installs the Debian packages ``chromium`` and ``chromium-driver``.
On a developer machine without them the browser tests skip, saying so; where
``MODELYARD_UI_TESTS=required`` (CI) they fail instead.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, sync_playwright

from tests.conftest import ROOT

CHROMIUM = Path("/usr/bin/chromium")
SCREENSHOTS = ROOT / "test-output" / "screenshots"


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        reason = (
            f"{CHROMIUM} is missing: install the Debian packages chromium and chromium-driver "
            "(apt-get install chromium chromium-driver) to run the dashboard's browser tests"
        )
        if os.environ.get("MODELYARD_UI_TESTS") == "required":
            pytest.fail(reason)
        pytest.skip(reason)
    with sync_playwright() as p:
        launched = p.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        yield launched
        launched.close()


@pytest.fixture
def screenshots() -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return SCREENSHOTS
