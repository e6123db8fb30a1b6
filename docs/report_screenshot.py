"""Make docs/report-example.png (the top of an evaluation report in headless Chromium) and docs/report-mistakes.png.

    python train.py                                   # writes reports/mnist-default/
    python docs/report_screenshot.py [reports/mnist-default]
"""
from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from playwright.sync_api import sync_playwright

ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--no-first-run"]
DOCS = Path(__file__).parent


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("report", nargs="?", default="reports/mnist-default", help="a report's folder")
    arguments = parser.parse_args()
    folder = Path(arguments.report)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS)
        page = browser.new_page(viewport={"width": 1100, "height": 1320})
        page.goto((folder / "report.html").resolve().as_uri())
        page.screenshot(path=str(DOCS / "report-example.png"), full_page=False)
        browser.close()
    shutil.copyfile(folder / "mistakes.png", DOCS / "report-mistakes.png")
    for name in ("report-example.png", "report-mistakes.png"):
        print(f"saved docs/{name} ({(DOCS / name).stat().st_size // 1024} KB)")


if __name__ == "__main__":
    main()
