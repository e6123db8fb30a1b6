"""minicnn pad in a real browser: Playwright drives headless Chromium (Debian's /usr/bin/chromium, launched by
path: Playwright cannot download its own browser here). One test draws a digit with mouse strokes and reads the
prediction and the feature-map panels from the page; another uploads a file; another checks a refusal is shown.

Skipped, with the reason, when the playwright package or a Chromium is missing. CI installs both:
``pip install -e ".[test]"`` brings playwright; Chromium comes from the system (apt-get install chromium), or
set MINICNN_CHROMIUM to another Chromium's path.
"""
import os
import shutil
import threading

import pytest
from PIL import Image, ImageDraw

from minicnn.pad.server import PadServer

CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run"]


def find_chromium():
    for candidate in (os.environ.get("MINICNN_CHROMIUM"), "/usr/bin/chromium", shutil.which("chromium"),
                      shutil.which("chromium-browser"), shutil.which("google-chrome")):
        if candidate and os.path.exists(candidate):
            return candidate
    return None


@pytest.fixture(scope="module")
def browser():
    sync_api = pytest.importorskip("playwright.sync_api",
                                   reason="playwright is not installed: pip install -e '.[test]'")
    chromium = find_chromium()
    if chromium is None:
        pytest.skip("no Chromium found (/usr/bin/chromium, chromium on PATH, or $MINICNN_CHROMIUM): "
                    "apt-get install chromium")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS, headless=True)
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def pad_url(digit_models):
    server = PadServer(("127.0.0.1", 0), model=digit_models / "mnist-default.npz", folder=digit_models)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.url
    server.shutdown()
    server.server_close()


@pytest.fixture
def page(browser, pad_url):
    page = browser.new_page(viewport={"width": 1280, "height": 1000})
    errors = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(pad_url)
    page.wait_for_function("document.querySelectorAll('#model option').length > 0")
    yield page
    page.close()
    assert not errors, errors  # no JavaScript error on the way


def stroke(page, points):
    """One pointer stroke through ``points`` given in canvas fractions (0-1)."""
    box = page.locator("#pad").bounding_box()
    at = [(box["x"] + x * box["width"], box["y"] + y * box["height"]) for x, y in points]
    page.mouse.move(*at[0])
    page.mouse.down()
    for start, end in zip(at, at[1:]):
        for step in range(1, 9):
            t = step / 8
            page.mouse.move(start[0] + (end[0] - start[0]) * t, start[1] + (end[1] - start[1]) * t)
    page.mouse.up()


def test_drawing_a_digit_shows_the_prediction_and_every_layer(page):
    stroke(page, [(0.52, 0.15), (0.49, 0.85)])  # a 1
    page.wait_for_function("document.querySelector('#digit').textContent !== '' && padIdle()")
    assert page.locator("#digit").text_content().strip() == "1"
    assert page.locator("#top3 .bar").count() == 3
    layers = page.eval_on_selector_all(".layer", "panels => panels.map(p => [p.dataset.name, "
                                       "p.querySelectorAll('canvas.map').length, p.querySelectorAll('.unit').length])")
    names = [name for name, _, _ in layers]
    assert names[:3] == ["conv2d", "relu", "maxpool2d"] and names[-1] == "softmax"
    maps = dict((name, count) for name, count, _ in layers)
    assert maps["conv2d"] == 32 and maps["maxpool2d_1"] == 32  # the first 32 of 64 channels
    units = dict((name, count) for name, _, count in layers)
    assert units["dense"] == 128 and units["softmax"] == 10
    assert page.locator("#filters canvas").count() == 32
    # the 28x28 the model sees has ink in it
    ink = page.evaluate("Array.from(document.querySelector('#input28').getContext('2d')"
                        ".getImageData(0, 0, 28, 28).data).filter((v, i) => i % 4 === 0 && v > 128).length")
    assert ink > 20
    # a map enlarges with its layer's name and shape
    page.locator(".layer[data-name='conv2d_1'] canvas.map").nth(3).click()
    assert page.locator("#zoom").is_visible()
    assert page.locator("#zoom-caption").text_content() == "conv2d_1 (Conv2D), output (14, 14, 64): channel 3"
    page.locator("#zoom-close").click()
    # undo and clear
    stroke(page, [(0.2, 0.5), (0.8, 0.5)])
    page.locator("#undo").click()
    page.wait_for_function("padIdle()")
    assert page.locator("#digit").text_content().strip() == "1"
    page.locator("#clear").click()
    assert page.locator("#digit").text_content() == "" and page.locator(".layer").count() == 0


def test_uploading_a_photo_predicts_it(page, tmp_path):
    image = Image.new("RGB", (640, 480), (200, 190, 160))  # tinted paper, dark ink
    ImageDraw.Draw(image).line([(330, 80), (310, 400)], fill=(40, 40, 50), width=22)
    path = tmp_path / "photo.jpg"
    image.save(path, quality=80)
    page.set_input_files("#upload", str(path))
    page.wait_for_function("document.querySelector('#digit').textContent !== ''")
    assert page.locator("#digit").text_content().strip() == "1"
    assert page.locator("#uploaded").is_visible()
    assert page.locator(".layer").count() == 11


def test_a_refused_upload_is_shown_and_the_pad_keeps_working(page, tmp_path):
    path = tmp_path / "notes.png"
    path.write_text("not an image")
    page.set_input_files("#upload", str(path))
    page.wait_for_function("document.querySelector('#error').textContent !== ''")
    assert "not a readable image" in page.locator("#error").text_content()
    stroke(page, [(0.52, 0.15), (0.49, 0.85)])
    page.wait_for_function("document.querySelector('#digit').textContent !== '' && padIdle()")
    assert page.locator("#error").text_content() == "" and page.locator("#digit").text_content() == "1"
