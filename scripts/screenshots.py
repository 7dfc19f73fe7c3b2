"""Regenerate the README's pictures from the running app, in headless Chromium at 1280×720:
docs/tour.png (the Tour after its edit and check) and docs/trace.png (the Trace tab's figure).

    .venv/bin/python scripts/screenshots.py            # needs /usr/bin/chromium (tests/install_chromium.sh)
"""
from __future__ import annotations

import base64
import socket
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))  # the page driver lives beside the browser tests

from screens import SCREENS, Browser  # noqa: E402

WIDTH = 960  # the README's pictures, scaled down from 1280 px


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def shrink(path: Path, width: int = WIDTH) -> Path:
    """Scale ``path`` to ``width`` pixels wide, as an 8-bit palette PNG (small in the repository)."""
    from PIL import Image

    image = Image.open(path).convert("RGB")
    image = image.resize((width, round(image.height * width / image.width)), Image.LANCZOS)
    image.quantize(colors=256, method=Image.MEDIANCUT).save(path, optimize=True)
    return path


def main() -> int:
    from workbench.app.blocks import build_app, launch_options

    out = ROOT / "docs"
    with tempfile.TemporaryDirectory(prefix="wb-shots-") as folder:
        demo = build_app("factworld", output_dir=Path(folder) / "out")
        port = free_port()
        demo.launch(prevent_thread_lock=True, quiet=True, **launch_options("127.0.0.1", port, False,
                                                                           demo.workbench_output_dir))
        browser = Browser(f"http://127.0.0.1:{port}/", Path(folder) / "profile")
        try:
            screens = {s.tab: s for s in SCREENS}
            browser.run(screens["4. Trace"])  # first: the Tour's edit would stay in this browser's model
            box = browser.page.js("""(() => { const i = [...document.querySelectorAll('.matplotlib img')]
                .find(i => i.offsetParent !== null); i.scrollIntoView(); const r = i.getBoundingClientRect();
                return {x: r.x + window.scrollX, y: r.y + window.scrollY, width: r.width, height: r.height}; })()""")
            shot = browser.page.call("Page.captureScreenshot", format="png", captureBeyondViewport=True,
                                     clip=dict(box, scale=1))
            (out / "trace.png").write_bytes(base64.b64decode(shot["data"]))
            shrink(out / "trace.png")
            browser.run(screens["1. Tour"])
            browser.page.js("[...document.querySelectorAll('h3')].find(h => h.innerText.startsWith('5. Edit'))"
                            ".scrollIntoView()")
            time.sleep(0.5)
            shrink(browser.screenshot(out / "tour.png", full_page=False))
        finally:
            browser.close()
            demo.close()
    for name in ("tour.png", "trace.png"):
        print(f"{out / name}: {(out / name).stat().st_size // 1024} KiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
