"""The evaluation report (minicnn/report.py, minicnn/plots.py, `minicnn report`): its numbers are evaluate's and
minicnn.metrics', its PNGs open at their stated size, its page is self-contained and opens in headless Chromium
without a network request or a console error.

A small CNN is trained for a few steps on real MNIST once per module; the report covers 600 test images."""
import base64
import json
import os
import re
import struct
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from conftest import REPO, real_data_dir

import minicnn
from minicnn import metrics, plots
from minicnn.cli import main
from minicnn.layers import Conv2D, Dense, Flatten, MaxPool2D
from minicnn.report import write_report

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
TEST_IMAGES = 600
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run"]


def load(name="mnist"):
    import mnist_loader
    return mnist_loader.load_dataset(name, data_dir=real_data_dir(name), verbose=False, allow_sample=False)


def images(array):
    import mnist_loader
    return mnist_loader.to_float32(array, add_channel_axis=True)


def small_model():
    return minicnn.Sequential([Conv2D(4, 3, activation="relu"), MaxPool2D(2), Flatten(),
                               Dense(10, activation="softmax")], input_shape=(28, 28, 1), seed=0)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """(model, history, data, x_test, y_test, report folder): 2 short epochs on 1,200 MNIST images."""
    data = load("mnist")
    model = small_model()
    model.compile(optimizer=minicnn.optimizers.Adam(3e-3))
    schedule = minicnn.callbacks.LearningRateScheduler(lambda epoch, lr: 3e-3 * 0.5 ** epoch)
    history = model.fit(images(data.x_train[:1200]), data.y_train[:1200], epochs=2, batch_size=64, verbose=0,
                        validation_data=(images(data.x_train[-300:]), data.y_train[-300:]), callbacks=[schedule])
    x_test, y_test = images(data.x_test[:TEST_IMAGES]), data.y_test[:TEST_IMAGES]
    out = tmp_path_factory.mktemp("report")
    write_report(model, x_test, y_test, out, history=history, data=data, examples=12)
    return model, history, data, x_test, y_test, out


def read_json(out):
    return json.loads((out / "report.json").read_text())


def expected_numbers(model, x_test, y_test):
    """What the report must say, computed here directly from evaluate, predict and minicnn.metrics."""
    loss, accuracy = model.evaluate(x_test, y_test)
    probabilities = model.predict(x_test)
    predicted = probabilities.argmax(axis=1)
    confusion = metrics.confusion_matrix(y_test, predicted, 10)
    precision, recall, f1 = metrics.precision_recall_f1(confusion)
    return dict(loss=loss, accuracy=accuracy, probabilities=probabilities, predicted=predicted, confusion=confusion,
                precision=precision, recall=recall, f1=f1, averages=metrics.averages(confusion))


def test_metrics_averages_by_hand():
    confusion = np.array([[3, 1], [0, 6]])  # class 0: p 1, r .75; class 1: p 6/7, r 1
    averages = metrics.averages(confusion)
    f1 = [2 * 0.75 / 1.75, 2 * (6 / 7) / (1 + 6 / 7)]
    assert averages["macro"] == pytest.approx({"precision": (1 + 6 / 7) / 2, "recall": 0.875, "f1": sum(f1) / 2,
                                               "support": 10})
    assert averages["weighted"] == pytest.approx({"precision": 0.4 + 0.6 * 6 / 7, "recall": 0.9,
                                                  "f1": 0.4 * f1[0] + 0.6 * f1[1], "support": 10})
    assert "weighted avg" in metrics.classification_report(confusion)


def test_the_json_holds_evaluates_and_the_metrics_numbers(trained):
    model, history, data, x_test, y_test, out = trained
    report = read_json(out)
    expected = expected_numbers(model, x_test, y_test)
    assert report["loss"] == expected["loss"] and report["accuracy"] == expected["accuracy"]
    assert report["accuracy"] == metrics.accuracy(y_test, expected["predicted"])
    assert report["test_images"] == TEST_IMAGES and report["errors"] == int((expected["predicted"] != y_test).sum())
    assert report["confusion_matrix"] == expected["confusion"].tolist()
    for key in ("precision", "recall", "f1"):
        assert report["per_class"][key] == expected[key].tolist()
    assert report["per_class"]["support"] == np.bincount(y_test, minlength=10).tolist()
    assert report["macro_avg"] == expected["averages"]["macro"]
    assert report["weighted_avg"] == expected["averages"]["weighted"]
    assert report["history"] == history.history and len(report["history"]["learning_rate"]) == 2
    assert report["history"]["learning_rate"] == [3e-3, 1.5e-3]
    assert report["class_names"] == [str(digit) for digit in range(10)]
    assert report["data"]["dataset"] == "mnist" and report["data"]["source"] == data.source
    assert report["model"]["plan"] == model.plan(print_fn=None) and "Total params" in report["model"]["summary"]
    assert report["prediction"]["images_per_second"] > 0


def test_the_examples_are_the_most_confident_mistakes_and_least_confident_hits(trained):
    model, _, _, x_test, y_test, out = trained
    report = read_json(out)
    expected = expected_numbers(model, x_test, y_test)
    confidence = expected["probabilities"].max(axis=1)
    wrong = expected["predicted"] != y_test
    mistakes, unsure = report["most_confident_mistakes"], report["least_confident_correct"]
    assert len(mistakes) == min(12, wrong.sum()) and len(unsure) == 12
    for listed, is_wrong in ((mistakes, True), (unsure, False)):
        for example in listed:
            index = example["index"]
            assert wrong[index] == is_wrong and example["true"] == y_test[index]
            assert example["predicted"] == expected["predicted"][index]
            assert example["probability"] == float(confidence[index])
    probabilities = [example["probability"] for example in mistakes]
    assert probabilities == sorted(probabilities, reverse=True)
    assert confidence[wrong].max() == probabilities[0] and (confidence[wrong] >= probabilities[-1]).sum() >= len(
        mistakes)
    probabilities = [example["probability"] for example in unsure]
    assert probabilities == sorted(probabilities) and confidence[~wrong].min() == probabilities[0]
    assert report["feature_map_examples"] == [int(np.flatnonzero(y_test == digit)[0]) for digit in range(10)]


class PageReader(HTMLParser):
    """The page's tables (id -> rows of cell texts), element texts by id, images and external references."""

    def __init__(self):
        super().__init__()
        self.tables, self.texts, self.images, self.references = {}, {}, [], []
        self.table = self.row = self.cell = self.text_id = None

    def handle_starttag(self, tag, attributes):
        attributes = dict(attributes)
        for name in ("src", "href"):
            if name in attributes:
                self.references.append((tag, attributes[name]))
        if tag == "table":
            self.table = self.tables.setdefault(attributes.get("id"), [])
        elif tag == "tr" and self.table is not None:
            self.row = []
            self.table.append(self.row)
        elif tag in ("td", "th") and self.row is not None:
            self.cell = ""
        elif tag == "img":
            self.images.append(attributes)
        if "id" in attributes and tag in ("dd", "pre"):
            self.text_id = attributes["id"]
            self.texts[self.text_id] = ""

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self.cell is not None:
            self.row.append(self.cell)
            self.cell = None
        elif tag == "table":
            self.table = None
        elif tag in ("dd", "pre"):
            self.text_id = None

    def handle_data(self, data):
        if self.cell is not None:
            self.cell += data
        if self.text_id is not None:
            self.texts[self.text_id] += data


def read_page(out):
    reader = PageReader()
    reader.feed((out / "report.html").read_text(encoding="utf-8"))
    return reader


def test_the_page_shows_the_same_numbers(trained):
    model, _, _, x_test, y_test, out = trained
    page = read_page(out)
    expected = expected_numbers(model, x_test, y_test)
    assert page.texts["test-accuracy"] == f"{expected['accuracy'] * 100:.2f}%"
    assert page.texts["test-loss"] == f"{expected['loss']:.4f}"
    assert page.texts["test-images"] == f"{TEST_IMAGES}"
    assert page.texts["macro-f1"] == f"{expected['averages']['macro']['f1']:.4f}"
    support = np.bincount(y_test, minlength=10)
    rows = page.tables["per-class"][1:]
    assert rows[:10] == [[str(digit), f"{expected['precision'][digit]:.4f}", f"{expected['recall'][digit]:.4f}",
                          f"{expected['f1'][digit]:.4f}", str(support[digit])] for digit in range(10)]
    assert rows[10:] == [[f"{kind} avg", *(f"{expected['averages'][kind][key]:.4f}" for key in ("precision", "recall",
                                                                                                  "f1")), "600"]
                         for kind in ("macro", "weighted")]
    assert [[int(count) for count in row[1:]] for row in page.tables["confusion-matrix"][1:]] == \
        expected["confusion"].tolist()
    confidence = expected["probabilities"].max(axis=1)
    for table in ("most-confident-mistakes", "least-confident-correct"):
        for index, true, predicted, probability in page.tables[table][1:]:
            index = int(index)
            assert (true, predicted) == (str(y_test[index]), str(expected["predicted"][index]))
            assert probability == f"{confidence[index]:.4f}"
    assert model.plan(print_fn=None) in page.texts["summary"]


def png_size(data):
    """(width, height) from a PNG's IHDR chunk, after checking the signature."""
    assert data[:8] == PNG_SIGNATURE and data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def test_every_png_opens_at_its_size_and_is_embedded_in_the_page(trained):
    model, _, _, _, _, out = trained
    report, page = read_json(out), read_page(out)
    figures = report["figures"]
    layers = [layer.name for layer in model.layers]
    assert set(figures) == {"learning_curves", "confusion_matrix", "per_class", "mistakes", "least_confident_correct",
                            "first_layer_filters", *(f"feature_maps_{i:02d}_{name}" for i, name in enumerate(layers))}
    assert (figures["learning_curves"]["width"], figures["learning_curves"]["height"]) == (1000, 400)
    assert (figures["confusion_matrix"]["width"], figures["confusion_matrix"]["height"]) == (800, 700)
    embedded = {base64.b64decode(image["src"].removeprefix("data:image/png;base64,")): image
                for image in page.images}
    assert len(page.images) == len(figures)
    try:
        from PIL import Image
    except ImportError:
        Image = None
    for name, figure in figures.items():
        data = (out / figure["file"]).read_bytes()
        assert png_size(data) == (figure["width"], figure["height"]), name
        if Image is not None:
            with Image.open(out / figure["file"]) as image:
                image.load()
                assert image.size == (figure["width"], figure["height"]) and image.format == "PNG"
        attributes = embedded[data]  # the page holds the very same bytes
        assert (int(attributes["width"]), int(attributes["height"])) == (figure["width"], figure["height"])


def test_the_page_needs_nothing_from_outside(trained):
    out = trained[-1]
    text = (out / "report.html").read_text(encoding="utf-8")
    page = read_page(out)
    assert all(reference.startswith("data:") for _, reference in page.references), page.references
    assert "<script" not in text and "@import" not in text and "url(" not in text
    assert not re.search(r"https?://", text)


def test_the_page_opens_in_headless_chromium_without_network_or_console_errors(trained, tmp_path):
    playwright_api = pytest.importorskip("playwright.sync_api", reason="Playwright is not installed: pip install "
                                         "playwright (its Python package; the browser is Debian's chromium)")
    if not CHROMIUM.exists():
        pytest.skip(f"no Chromium at {CHROMIUM}: apt-get install -y chromium")
    page_path = (trained[-1] / "report.html").resolve()
    requests, console_errors = [], []
    with playwright_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1200, "height": 900})
            page.on("request", lambda request: requests.append(request.url))
            page.on("console", lambda message: console_errors.append(message.text) if message.type == "error" else None)
            page.on("pageerror", lambda error: console_errors.append(str(error)))
            page.goto(page_path.as_uri(), wait_until="load")
            broken = page.evaluate("Array.from(document.images).filter(i => !i.complete || i.naturalWidth === 0)"
                                   ".length")
            shown = page.evaluate("document.images.length")
            page.screenshot(path=str(tmp_path / "report.png"), full_page=True)
        finally:
            browser.close()
    outside = [url for url in requests if not url.startswith("data:") and url != page_path.as_uri()]
    assert page_path.as_uri() in requests  # the listener heard the page itself...
    assert outside == [] and console_errors == []  # ...and nothing else
    assert shown == len(read_json(trained[-1])["figures"]) and broken == 0
    width, height = png_size((tmp_path / "report.png").read_bytes())
    assert width == 1200 and height > 3000  # the whole page, figures included


def test_the_plots_work_without_pyplot(tmp_path):
    code = ("import sys, numpy as np\nfrom minicnn import plots\n"
            "figure = plots.confusion_matrix(np.eye(3, dtype=int) * 5, ['a', 'b', 'c'])\n"
            "figure.savefig(sys.argv[1])\n"
            "assert 'matplotlib.pyplot' not in sys.modules, 'pyplot was imported'\n")
    completed = subprocess.run([sys.executable, "-c", code, str(tmp_path / "plot.png")], capture_output=True,
                               text=True, timeout=120, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert completed.returncode == 0, completed.stderr
    assert png_size((tmp_path / "plot.png").read_bytes()) == (800, 700)
    figure = plots.learning_curves({"loss": [1.0, 0.5], "accuracy": [0.6, 0.8], "learning_rate": [1e-3, 5e-4]})
    assert plots.pixel_size(figure) == (1000, 400) and type(figure).__name__ == "Figure"


def saved_model(tmp_path, trained, dataset="mnist"):
    model, history = trained[0], trained[1]
    path = tmp_path / "small.npz"
    model.save(path, metadata={"dataset": dataset, "history": history.history, "training": "2 epochs in 1.0 s",
                               "training_seconds": 1.0, "images_per_second": 2400.0})
    return path


def test_minicnn_report_on_a_saved_model(trained, tmp_path, capsys):
    path = saved_model(tmp_path, trained)
    out = tmp_path / "out"
    status = main(["report", str(path), "--out", str(out), "--data-dir", str(real_data_dir("mnist")),
                   "--limit", str(TEST_IMAGES)])
    captured = capsys.readouterr()
    assert status == 0, captured.err
    assert captured.out.strip() == str(out / "report.html") and "report: drawing the figures" in captured.err
    report = read_json(out)
    model, history, _, x_test, y_test, _ = trained
    assert report["history"] == history.history and report["training"]["images_per_second"] == 2400.0
    assert (report["loss"], report["accuracy"]) == minicnn.load_model(path).evaluate(x_test, y_test)
    assert report["model_file"] == str(path.resolve()) and read_page(out).texts["training-speed"] == "2,400 images/s"


def test_minicnn_report_names_fashion_mnist_classes_and_defaults_to_reports_folder(trained, tmp_path, capsys,
                                                                                    monkeypatch):
    path = saved_model(tmp_path, trained, dataset="fashion-mnist")
    data_dir = real_data_dir("fashion-mnist")
    monkeypatch.chdir(tmp_path)
    assert main(["report", str(path), "--data-dir", str(data_dir), "--limit", "300"]) == 0, capsys.readouterr().err
    out = tmp_path / "reports" / "small"
    report = read_json(out)
    assert report["class_names"][:2] == ["T-shirt/top", "Trouser"] and report["data"]["dataset"] == "fashion-mnist"
    assert read_page(out).tables["per-class"][1][0] == "T-shirt/top"


def test_minicnn_report_explains_a_missing_model(tmp_path, capsys):
    assert main(["report", str(tmp_path / "nothing.npz")]) == 2
    assert "no such model file" in capsys.readouterr().err


def test_a_model_saved_without_history_gets_a_report_that_says_so(trained, tmp_path):
    model, _, _, x_test, y_test, _ = trained
    page = write_report(model, x_test[:200], y_test[:200], tmp_path / "bare", metadata={})
    report = read_json(tmp_path / "bare")
    assert report["history"] is None and report["training"] is None and report["data"]["class_names"][0] == "0"
    assert "No training history" in page.read_text() and read_page(tmp_path / "bare").texts["training"] == \
        "not recorded in the model file"


def test_train_py_saves_the_model_even_when_the_report_fails(tmp_path):
    blocker = tmp_path / "not a folder"
    blocker.write_text("a file where the report folder should go")
    model_file = tmp_path / "mlp.npz"
    completed = subprocess.run([sys.executable, str(REPO / "train.py"), "--model", "mlp", "--epochs", "1", "--limit",
                                "500", "--quiet", "--data-dir", str(real_data_dir("mnist")), "--save", str(model_file),
                                "--report", str(blocker / "report")], capture_output=True, text=True, timeout=600,
                               cwd=tmp_path)
    assert completed.returncode == 0, completed.stderr
    assert "warning: the evaluation report failed" in completed.stderr and "minicnn report" in completed.stderr
    assert completed.stdout.rstrip().splitlines()[-1] == f"saved the model to {model_file}" and model_file.is_file()


def test_augmentation_layers_get_no_feature_maps(tmp_path):
    """The default run's model starts with RandomRotation/Translation/Zoom: they act in training only (at inference
    their output is their input), so the report shows the feature maps of the layers after them."""
    from minicnn.architectures import with_augmentation
    from minicnn.layers import RandomRotation, RandomZoom

    data = load("mnist")
    model = with_augmentation(small_model(), [RandomRotation(0.04), RandomZoom(0.1)])
    model.compile(optimizer=minicnn.optimizers.Adam(3e-3))
    write_report(model, images(data.x_test[:200]), data.y_test[:200], tmp_path, data=data, examples=4)
    shown = [layer.name for layer in model.layers[2:]]
    assert [name for name in read_json(tmp_path)["figures"] if name.startswith("feature_maps")] == \
        [f"feature_maps_{index:02d}_{name}" for index, name in enumerate(shown)]
