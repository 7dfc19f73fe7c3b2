"""Every tab as a room sees it: headless Chromium at 1280×720 presses each tab's main buttons, takes
a screenshot, and checks from the DOM that no table column is cut off, every expected figure has
rendered and no error shows. Screenshots are kept in ``$WORKBENCH_SCREENSHOT_DIR`` (default
``test-artifacts/screens/`` in the repository) for a person to look at.
"""
from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from test_app import HAS_FACTWORLD, launch
from test_app_browser import CHROMIUM

pytestmark = [pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="chromium is not installed: run "
                                 "tests/install_chromium.sh"),
              pytest.mark.skipif(not HAS_FACTWORLD, reason="the screens are written for the factworld model"),
              pytest.mark.slow]
ARTIFACTS = Path(os.environ.get("WORKBENCH_SCREENSHOT_DIR") or Path(__file__).resolve().parent.parent
                 / "test-artifacts" / "screens")


def test_every_tab_at_projector_size(tmp_path):
    from screens import SCREENS, Browser

    from workbench.app.blocks import build_app

    demo = build_app("factworld", output_dir=tmp_path / "out")
    browser = Browser(launch(demo), tmp_path / "profile")
    found = {}
    try:
        for screen in SCREENS:
            started = time.perf_counter()
            browser.run(screen)
            name = screen.tab.split(". ", 1)[1].lower()
            shot = browser.screenshot(ARTIFACTS / f"{name}.png")
            found[screen.tab] = browser.problems() | {"seconds": round(time.perf_counter() - started, 1)}
            assert shot.stat().st_size > 10_000
            assert browser.figures() >= screen.figures, screen.tab
    finally:
        browser.close()
        demo.close()
    assert {tab: p for tab, p in found.items() if p["clipped"] or p["errors"]} == {}, found
    session = demo.workbench_pool.get("factworld")
    assert session.weights_hash() == demo.workbench_pool.original_hash("factworld") and not session.applied_edits
