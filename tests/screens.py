"""Drive the app in headless Chromium at projector size (1280×720): open each tab, press its main
buttons, wait for their results, take a screenshot, and read from the DOM what a room would see
wrong: a table column cut off, a figure that did not render, an error message.

Used by tests/test_app_screens.py and scripts/screenshots.py (the README's pictures).
"""
from __future__ import annotations

import base64
import json
import time
from dataclasses import dataclass
from pathlib import Path

from test_app_browser import DevTools, start_chromium

WIDTH, HEIGHT = 1280, 720


@dataclass(frozen=True)
class Step:
    button: str  # the visible button's exact label
    done: str  # text that shows once the result is on the page


@dataclass(frozen=True)
class Screen:
    tab: str
    steps: tuple[Step, ...]
    figures: int  # rendered figures expected in the tab afterwards
    tables: int = 0  # filled tables expected in the tab afterwards


SCREENS = (
    Screen("1. Tour", (Step("Ask: where is the Eiffel Tower?", "Most likely next token"),
                       Step("Show the MLP matrix", "Nothing here is labelled Paris"),
                       Step("Run the logit lens", "the top guess"),
                       Step("Trace the fact", "Two sites, as in ROME"),
                       Step("Edit: Eiffel Tower → Rome", "Weights hash:"),
                       Step("Check prompts, neighbours, two-hop and free text", "Free text after the edit"),
                       Step("Undo the edit and compare hashes", "bit-for-bit the original")), 3, 2),
    Screen("2. Model", (Step("Show architecture card and hashes", "weights hash (checkpoint)"),
                        Step("Show matrix", ""), Step("Weight statistics (all layers)", "mlp_out")), 1, 1),
    Screen("3. Inspect", (Step("Top next tokens", "Paris"), Step("Logit lens", "")), 2, 1),
    Screen("4. Trace", (Step("Trace", "Two sites, as in ROME"),), 1),
    Screen("5. Probe", (Step("Sweep layers", "Best layer"), Step("PCA at the best layer", ""),
                        Step("Run the causal check", "steered to")), 3),
    Screen("6. Edit", (Step("Edit", "Edited:"),), 0, 3),
    Screen("7. Forensics", (Step("Create a new hunt", "Hunt ready"), Step("Survey all copies", "questions asked of")),
           0, 1),
    Screen("8. Report", (Step("What is in my report?", "results on model"),
                         Step("Export the report as HTML", "report-")), 0),
)

# JavaScript, evaluated in the page -------------------------------------------------------------
_CLICK = """(label => { const b = [...document.querySelectorAll('button[role=tab]'), ...document.querySelectorAll('button')]
    .find(b => b.offsetParent !== null && b.innerText.trim() === label && !b.disabled && b.tabIndex !== -1);
    if (b) b.click(); return !!b; })"""
_FIGURES = """(() => [...document.querySelectorAll('.matplotlib img')]
    .filter(i => i.offsetParent !== null && i.complete && i.naturalWidth > 0).length)()"""
_TABLES = """(() => [...document.querySelectorAll('table')]
    .filter(t => t.offsetParent !== null && t.querySelectorAll('tbody tr td').length > 1).length)()"""
# a table is clipped when its scroll box scrolls sideways or it reaches past the window; a cell
# when its text is wider than the cell (an ellipsis or a cut)
_CLIPPED = """(() => { const bad = [];
  for (const t of document.querySelectorAll('table')) {
    if (t.offsetParent === null) continue;
    const r = t.getBoundingClientRect();
    if (r.right > window.innerWidth + 1) bad.push('table reaches past the window: ' + t.innerText.slice(0, 60));
    for (let p = t.parentElement; p && p !== document.body; p = p.parentElement) {
      const ox = getComputedStyle(p).overflowX;
      if (ox === 'auto' || ox === 'scroll' || ox === 'hidden') {
        if (p.scrollWidth > p.clientWidth + 8)
          bad.push('table scrolls sideways by ' + (p.scrollWidth - p.clientWidth) + 'px: ' + t.innerText.slice(0, 60));
        break;
      }
    }
    for (const c of t.querySelectorAll('th, td')) {
      if (c.offsetParent !== null && c.innerText.trim() && c.scrollWidth > c.clientWidth + 2)
        bad.push('cell cut: ' + c.innerText.slice(0, 40));
    }
  }
  return bad; })()"""
_ERRORS = """(() => { const t = document.body.innerText;
  const toasts = [...document.querySelectorAll('.toast-body')].filter(e => e.offsetParent !== null)
    .map(e => e.innerText.trim());
  return toasts.concat(['Traceback', 'internal error'].filter(w => t.includes(w))); })()"""


class Browser:
    """One headless Chromium page at 1280×720 on ``url``."""

    def __init__(self, url: str, profile: Path):
        self.proc, ws_url = start_chromium(profile)
        self.page = DevTools(ws_url)
        self.page.call("Page.enable")
        self.page.call("Emulation.setDeviceMetricsOverride", width=WIDTH, height=HEIGHT, deviceScaleFactor=1,
                       mobile=False)
        self.page.call("Page.navigate", url=url)
        self.page.wait_for("document.body && document.body.innerText.includes('8. Report')", 120, "the app")

    def click(self, label: str, timeout: float = 60) -> None:
        """Click the visible button ``label`` (waiting for it: a tab renders when first opened)."""
        self.page.wait_for(f"{_CLICK}({json.dumps(label)})", timeout, f"a visible button {label!r}")

    def run(self, screen: Screen, timeout: float = 600) -> None:
        """Open the tab, press each button and wait for its result (and every figure expected)."""
        self.click(screen.tab)
        time.sleep(0.5)
        for step in screen.steps:
            self.click(step.button)
            if step.done:
                self.page.wait_for(f"document.body.innerText.includes({json.dumps(step.done)})", timeout,
                                   f"{step.button!r} in {screen.tab}")
        self.page.wait_for(f"{_FIGURES} >= {screen.figures} && {_TABLES} >= {screen.tables}", timeout,
                           f"the figures and tables of {screen.tab}")
        time.sleep(1.0)  # let the last layout settle before it is read and photographed

    def problems(self) -> dict:
        """What the DOM shows wrong now: clipped tables or cells, error messages."""
        return {"clipped": self.page.js(_CLIPPED), "errors": self.page.js(_ERRORS)}

    def figures(self) -> int:
        return self.page.js(_FIGURES)

    def screenshot(self, path: Path, full_page: bool = True) -> Path:
        shot = self.page.call("Page.captureScreenshot", format="png", captureBeyondViewport=full_page)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(shot["data"]))
        return path

    def element_screenshot(self, text: str, path: Path) -> Path:
        """A screenshot of the visible block holding ``text`` (e.g. one figure with its heading)."""
        box = self.page.js(f"""(() => {{ const el = [...document.querySelectorAll('.block')]
            .filter(b => b.offsetParent !== null && b.innerText.includes({json.dumps(text)}))
            .sort((a, b) => a.innerText.length - b.innerText.length)[0];
            if (!el) return null; el.scrollIntoView(); const r = el.getBoundingClientRect();
            return {{x: r.x + window.scrollX, y: r.y + window.scrollY, width: r.width, height: r.height}}; }})()""")
        assert box, f"no block with {text!r}"
        shot = self.page.call("Page.captureScreenshot", format="png", captureBeyondViewport=True,
                              clip=dict(box, scale=1))
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(shot["data"]))
        return path

    def close(self) -> None:
        self.page.close()
        self.proc.terminate()
        self.proc.wait(timeout=30)
