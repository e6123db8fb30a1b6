"""Make docs/pad.png: the pad in headless Chromium (Playwright), a 4 drawn with the mouse, the default model.

    MINICNN_MODELS=... python docs/pad_screenshot.py [--model FILE] [--out docs/pad.png]
"""
from __future__ import annotations

import argparse
import io
import threading
from pathlib import Path

from PIL import Image
from playwright.sync_api import sync_playwright

from minicnn.commands.predict import resolve_model
from minicnn.pad.server import PadServer

ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--no-first-run"]
FOUR = [[(0.55, 0.18), (0.3, 0.6), (0.75, 0.6)], [(0.62, 0.35), (0.6, 0.88)]]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=None)
    parser.add_argument("--out", default=str(Path(__file__).with_name("pad.png")))
    arguments = parser.parse_args()
    server = PadServer(("127.0.0.1", 0), model=resolve_model(arguments.model))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.goto(server.url)
        page.wait_for_function("document.querySelectorAll('#model option').length > 0")
        box = page.locator("#pad").bounding_box()
        for stroke in FOUR:
            points = [(box["x"] + x * box["width"], box["y"] + y * box["height"]) for x, y in stroke]
            page.mouse.move(*points[0])
            page.mouse.down()
            for start, end in zip(points, points[1:]):
                for step in range(1, 11):
                    page.mouse.move(start[0] + (end[0] - start[0]) * step / 10,
                                    start[1] + (end[1] - start[1]) * step / 10)
            page.mouse.up()
        page.wait_for_timeout(800)
        shot = page.screenshot(full_page=False)
        browser.close()
    server.shutdown()
    image = Image.open(io.BytesIO(shot)).convert("RGB").quantize(colors=128)
    image.save(arguments.out, optimize=True)
    print(f"saved {arguments.out} ({Path(arguments.out).stat().st_size // 1024} KB)")


if __name__ == "__main__":
    main()
