"""The README's picture of `pts view`: one pivot of a run's report, focused, in Chromium.

python docs/experiments/view_screenshot.py RUN.jsonl PIVOT_ID OUT.png

Builds the report of RUN.jsonl (its trace and progress files beside it) with ``pts.view.build_report``,
opens it in Debian's Chromium through Playwright at ``#view=trajectories&pivot=PIVOT_ID`` (1120 px wide,
no network), and saves the top of the page down to the end of that pivot's trajectory card.
"""

import sys
import tempfile
from pathlib import Path

from playwright.sync_api import sync_playwright

from pts.view import build_report


def main(run: str, pivot: str, out: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "report.html"
        build_report([Path(run)], report)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox", "--disable-gpu"])
            page = browser.new_page(viewport={"width": 1120, "height": 900})
            page.route(
                "**/*", lambda route: route.continue_() if route.request.url.startswith("file:") else route.abort()
            )
            page.goto(f"{report.as_uri()}#view=trajectories&pivot={pivot}")
            page.wait_for_timeout(500)
            card = page.locator(".card").filter(has=page.locator(f".pivot[data-id='{pivot}']")).first
            box = card.bounding_box()
            page.screenshot(path=out, clip={"x": 0, "y": 0, "width": 1120, "height": box["y"] + box["height"] + 8})
            browser.close()


if __name__ == "__main__":
    main(*sys.argv[1:])
