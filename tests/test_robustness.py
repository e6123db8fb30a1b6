"""Every input boundary refuses what it cannot take, with a documented error, and loses nothing (issue 16,
docs/robustness.md): one test per case class an external harness found, each on the smallest example.

Model files (.npz, .keras), saving, training arguments and inputs, the max-pool with NaN (all three engines),
downloads (a 1-byte-per-second mirror and a too-long body on 127.0.0.1), gzip bombs, images (16-bit, EXIF,
--show) and train.py --save. The random and mutated versions of these inputs are in tests/test_properties.py.
"""
from __future__ import annotations

import gzip
import io
import json
import subprocess
import sys
import threading
import time
import tracemalloc
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest

import minicnn
from minicnn import Sequential, load_model
from minicnn.errors import InputError, LabelError, ModelFileError, NonFiniteGradientError, NonFiniteLossError
from minicnn.layers import Conv2D, Dense, Flatten, MaxPool2D
from minicnn.optimizers import SGD, Adam

REPO = Path(__file__).resolve().parents[1]


def small_model(size=8, engine="reference", seed=0):
    return Sequential([Conv2D(2, 3, activation="relu"), MaxPool2D(2), Flatten(), Dense(10, activation="softmax")],
                      input_shape=(size, size, 1), engine=engine, seed=seed)


def small_data(count=16, size=8, seed=0):
    rng = np.random.default_rng(seed)
    return rng.random((count, size, size, 1)).astype(np.float32), rng.integers(0, 10, count)


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """(path, {name: array}) of a small trained model saved with its Adam state."""
    model = small_model()
    model.compile("adam")
    model.fit(*small_data(), verbose=0)
    path = model.save(tmp_path_factory.mktemp("models") / "good.npz")
    with np.load(path) as archive:
        return path, {name: archive[name] for name in archive.files}


def with_architecture(arrays, change):
    architecture = json.loads(str(arrays["architecture"]))
    change(architecture)
    return {**arrays, "architecture": np.array(json.dumps(architecture))}


def set_layer(index, key, value):
    return lambda architecture: architecture["layers"][index]["config"].__setitem__(key, value)


def replace(arrays, **changes):
    result = dict(arrays)
    for name, value in changes.items():
        if value is None:
            del result[name]
        else:
            result[name] = value
    return result


def renamed(arrays, old, new):
    result = dict(arrays)
    result[new] = result.pop(old)
    return result


def with_nan(array):
    array = array.copy()
    array.flat[0] = np.nan
    return array


MODEL_FILE_CASES = {  # name: (how the good file's arrays are changed, words the error must contain)
    "Dense(10**12)": (lambda a: with_architecture(a, set_layer(4, "units", 10**12)), "units"),
    "Conv2D(filters=10**9)": (lambda a: with_architecture(a, set_layer(0, "filters", 10**9)), "filters"),
    "a 10^6 x 10^6 input": (lambda a: with_architecture(a, lambda c: c.__setitem__("input_shape", [10**6, 10**6, 1])),
                            "input_shape"),
    "Dense after a huge Flatten": (lambda a: with_architecture(
        a, lambda c: (c.__setitem__("input_shape", [2000, 2000, 1]), set_layer(4, "units", 1 << 20)(c))), "budget"),
    "more weights than the file holds": (lambda a: with_architecture(a, set_layer(4, "units", 1000)), "file holds"),
    "padding 5": (lambda a: with_architecture(a, set_layer(0, "padding", 5)), "padding"),
    "a layer that is a string": (lambda a: with_architecture(a, lambda c: c["layers"].__setitem__(1, "relu")),
                                 "layers[1]"),
    "a layer that is null": (lambda a: with_architecture(a, lambda c: c["layers"].__setitem__(1, None)), "layers[1]"),
    "units as a string": (lambda a: with_architecture(a, set_layer(4, "units", "10")), "units"),
    "an unknown config key": (lambda a: with_architecture(a, set_layer(4, "colour", "red")), "cannot be rebuilt"),
    "an unknown layer class": (lambda a: with_architecture(
        a, lambda c: c["layers"][1].__setitem__("class", "Lambda")), "class"),
    "units 1e999": (lambda a: replace(a, architecture=np.array(
        str(a["architecture"]).replace('"units": 10', '"units": 1e999'))), "overflows"),
    "NaN in the JSON": (lambda a: replace(a, architecture=np.array(
        str(a["architecture"]).replace('"units": 10', '"units": NaN'))), "NaN"),
    "brackets nested 100,000 deep": (lambda a: replace(a, architecture=np.array("[" * 100_000 + "]" * 100_000)),
                                     "deep"),
    "architecture null": (lambda a: replace(a, architecture=np.array("null")), "not an object"),
    "no architecture": (lambda a: replace(a, architecture=None), "missing"),
    "another format": (lambda a: replace(a, format=np.array("minicnn-model-0")), "expected minicnn-model-1"),
    "param_3 for param_003": (lambda a: renamed(a, "param_003", "param_3"), "param_3"),
    "complex weights": (lambda a: replace(a, param_000=a["param_000"] + 1j), "complex"),
    "integer weights": (lambda a: replace(a, param_000=a["param_000"].astype(np.int64)), "int64"),
    "NaN weights": (lambda a: replace(a, param_001=with_nan(a["param_001"])), "NaN"),
    "a weight of the wrong shape": (lambda a: replace(a, param_000=a["param_000"].reshape(9, 2)), "shape"),
    "a missing weight": (lambda a: replace(a, param_003=None), "file holds"),
    "Adam state with NaN": (lambda a: replace(a, optimizer_m=with_nan(a["optimizer_m"])), "NaN"),
    "Adam state of the wrong length": (lambda a: replace(a, optimizer_v=a["optimizer_v"][:-1]), "state 'v'"),
    "Adam state missing": (lambda a: replace(a, optimizer_v=None), "missing"),
    "an unknown optimizer": (lambda a: with_architecture(
        a, lambda c: c["optimizer"].__setitem__("class", "Lion")), "unknown optimizer"),
    "Adam(learning_rate=inf) in the file": (lambda a: replace(a, architecture=np.array(
        str(a["architecture"]).replace('"learning_rate": 0.001', '"learning_rate": 1e400'))), "overflows"),
    "Adam with a negative learning rate": (lambda a: with_architecture(
        a, lambda c: c["optimizer"]["config"].__setitem__("learning_rate", -1)), "learning_rate"),
    "an object array": (lambda a: replace(a, param_000=np.array([{"x": 1}], dtype=object)), "objects"),
}


@pytest.mark.parametrize("case", sorted(MODEL_FILE_CASES))
def test_a_damaged_model_file_is_a_clear_model_file_error(saved, tmp_path, case):
    change, words = MODEL_FILE_CASES[case]
    path = tmp_path / "bad.npz"
    arrays = change(saved[1])
    with open(path, "wb") as file:
        np.savez(file, **arrays)
    with pytest.raises(ModelFileError, match="bad.npz") as error:
        load_model(path)
    assert words in str(error.value), str(error.value)


def npy_header(shape, descr="<f4"):
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(buffer, {"descr": descr, "fortran_order": False, "shape": shape})
    return buffer.getvalue()


def test_sizes_are_checked_before_anything_is_decompressed_or_allocated(saved, tmp_path):
    path, arrays = saved
    # a .npy header declaring 10^12 floats, holding 100 bytes
    lying = tmp_path / "lying.npz"
    np.savez(lying, **replace(arrays, param_000=None))
    with zipfile.ZipFile(lying, "a") as archive:
        archive.writestr("param_000.npy", npy_header((10**6, 10**6)) + bytes(100))
    with pytest.raises(ModelFileError, match="header declares shape"):
        load_model(lying)
    # a 512 MiB member of zeros: ~0.5 MB on disk
    junk = tmp_path / "junk.npz"
    junk.write_bytes(path.read_bytes())
    with zipfile.ZipFile(junk, "a", zipfile.ZIP_DEFLATED) as archive, archive.open("junk.npy", "w") as member:
        member.write(npy_header((512 << 20,), "|u1"))
        zeros = bytes(1 << 20)
        for _ in range(512):
            member.write(zeros)
    tracemalloc.start()
    try:
        with pytest.raises(ModelFileError, match="nothing was decompressed"):
            load_model(junk)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 20 << 20, peak


def test_a_flipped_bit_anywhere_is_refused_or_harmless(saved, tmp_path):
    raw = saved[0].read_bytes()
    outcomes = {"refused": 0, "loaded": 0}
    for position in range(0, len(raw), max(1, len(raw) // 400)):
        damaged = bytearray(raw)
        damaged[position] ^= 0x10
        path = tmp_path / "flipped.npz"
        path.write_bytes(bytes(damaged))
        try:
            model = load_model(path)
        except ModelFileError:
            outcomes["refused"] += 1
        else:  # a flip in a name's padding or the zip's comment fields: the model must still be whole and finite
            outcomes["loaded"] += 1
            assert np.isfinite(model.flat_params).all()
    assert outcomes["refused"] > 0


def test_save_refuses_non_finite_weights_and_keeps_the_previous_file(tmp_path):
    model = small_model()
    model.compile("adam")
    model.fit(*small_data(), verbose=0)
    path = model.save(tmp_path / "model.npz")
    before = path.read_bytes()
    model.flat_params[3] = np.inf
    with pytest.raises(ModelFileError, match="NaN or infinity"):
        model.save(path)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.npz"]  # no temporary file left


def test_a_keras_file_with_a_flipped_bit_or_nan_weights_is_refused(tmp_path):
    pytest.importorskip("keras")
    from minicnn.interop.keras import load_keras_model, to_keras

    keras_model = to_keras(small_model())
    path = tmp_path / "model.keras"
    keras_model.save(path)
    raw = path.read_bytes()
    for position in range(0, len(raw), max(1, len(raw) // 60)):
        damaged = bytearray(raw)
        damaged[position] ^= 0x04
        (tmp_path / "flipped.keras").write_bytes(bytes(damaged))
        try:
            load_keras_model(tmp_path / "flipped.keras")
        except ModelFileError:
            pass
    weights = keras_model.get_weights()
    weights[0][0, 0, 0, 0] = np.nan
    keras_model.set_weights(weights)
    keras_model.save(tmp_path / "nan.keras")
    with pytest.raises(ModelFileError, match="NaN"):
        load_keras_model(tmp_path / "nan.keras")
    (tmp_path / "junk.keras").write_bytes(b"PK\x03\x04" + bytes(100))
    with pytest.raises(ModelFileError, match="not a readable .keras file"):
        load_keras_model(tmp_path / "junk.keras")


# ---------------------------------------------------------------------------------------------------- training
@pytest.mark.parametrize("engine", ["fast", "twins", "reference"])
@pytest.mark.parametrize("position", [(0, 0), (7, 7), (7, 0), (6, 3)])
def test_a_nan_pixel_anywhere_never_reaches_the_weights(engine, position):
    """One NaN pixel, wherever it falls in its pooling window: train_step refuses the update (NaN loss, or the
    gradient check naming the layer), every engine alike, and the weights stay as they were."""
    model = small_model(engine=engine)
    model.compile("adam")
    x, y = small_data()
    x[3, position[0], position[1], 0] = np.nan
    before = model.flat_params.copy()
    with pytest.raises(NonFiniteLossError):
        model.train_step(x, y)
    assert np.array_equal(model.flat_params, before)
    with pytest.raises(InputError, match=r"index \(3, %d, %d, 0\)" % position):
        model.fit(x, y, verbose=0)
    assert np.array_equal(model.flat_params, before)


def test_the_gradient_check_names_the_layer():
    model = small_model(size=9, engine="reference")  # 9x9: the pool drops the last row, the loss stays finite
    model.compile("sgd")
    x, y = small_data(size=9)
    x[3, 8, 8, 0] = np.nan
    before = model.flat_params.copy()
    with pytest.raises(NonFiniteGradientError, match=r"layer 'conv2d' \(kernel\)"):
        model.train_step(x, y)
    assert np.array_equal(model.flat_params, before)


def test_max_pool_propagates_nan_in_kernels_and_twins():
    from minicnn.kernels.pooling import maxpool_forward_numba, maxpool_forward_numpy

    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 6, 6, 3)).astype(np.float32)
    x[0, 1, 1, 0] = np.nan   # last in its 2x2 window
    x[1, 4, 5, 2] = np.nan   # second in its window
    x[1, 0, 0, 1] = x[1, 1, 1, 1] = np.nan  # two NaNs: the first wins
    for function in (maxpool_forward_numba, maxpool_forward_numpy):
        y, argmax = function(x, 2, 2, 2, 2, 3, 3)
        assert np.isnan(y[0, 0, 0, 0]) and argmax[0, 0, 0, 0] == 3
        assert np.isnan(y[1, 2, 2, 2]) and argmax[1, 2, 2, 2] == 1
        assert np.isnan(y[1, 0, 0, 1]) and argmax[1, 0, 0, 1] == 0
        assert np.isnan(y).sum() == 3


@pytest.mark.parametrize("call, words", [
    (lambda m, x, y: m.fit(x, y, batch_size=-1, verbose=0), "`batch_size` must be an integer >= 1"),
    (lambda m, x, y: m.fit(x, y, batch_size=0, verbose=0), "`batch_size` must be an integer >= 1"),
    (lambda m, x, y: m.fit(x, y, batch_size=2.5, verbose=0), "`batch_size` must be an integer"),
    (lambda m, x, y: m.fit(x, y, epochs=1.5, verbose=0), "`epochs` must be an integer"),
    (lambda m, x, y: m.fit(x, y, epochs="3", verbose=0), "`epochs` must be an integer"),
    (lambda m, x, y: m.fit(x, y, validation_data=(x,), verbose=0), "`validation_data` is expected"),
    (lambda m, x, y: m.fit(x, y, validation_data=x, verbose=0), "`validation_data` is expected"),
    (lambda m, x, y: m.fit(x, y, validation_split="0.1", verbose=0), "`validation_split`"),
    (lambda m, x, y: m.fit(x, y, validation_split=1.5, verbose=0), "validation_split"),
    (lambda m, x, y: m.fit(x[:0], y[:0], verbose=0), "no training samples"),
    (lambda m, x, y: m.evaluate(x[:0], y[:0]), "0 images"),
    (lambda m, x, y: m.evaluate(x, y, batch_size=-1), "`batch_size`"),
    (lambda m, x, y: m.predict(x, batch_size=-1), "`batch_size`"),
    (lambda m, x, y: m.predict(x, batch_size=0), "`batch_size`"),
    (lambda m, x, y: m.predict(np.where(x > 0.5, np.nan, x)), "NaN or infinite"),
    (lambda m, x, y: m.evaluate(np.where(x > 0.5, np.inf, x), y), "NaN or infinite"),
    (lambda m, x, y: m.predict(x.astype(complex)), "real numbers"),
    (lambda m, x, y: m.fit(x, -np.ones((len(x), 10)), verbose=0), "one-hot labels"),
    (lambda m, x, y: m.fit(x, np.full((len(x), 10), np.nan), verbose=0), "one-hot labels"),
    (lambda m, x, y: m.fit(x, y + 0.5, verbose=0), "whole numbers"),
    (lambda m, x, y: m.fit(x, y * 100, verbose=0), "labels must be in 0..9"),
])
def test_bad_training_arguments_are_clear_value_errors(call, words):
    model = small_model()
    model.compile("adam")
    x, y = small_data()
    before = model.flat_params.copy()
    with pytest.raises(ValueError, match=None) as error:
        call(model, x, y)
    assert words in str(error.value), str(error.value)
    assert np.array_equal(model.flat_params, before)


def test_predict_on_zero_images_is_an_empty_answer_and_epochs_zero_trains_nothing():
    model = small_model()
    x, y = small_data()
    assert model.predict(x[:0]).shape == (0, 10)
    before = model.flat_params.copy()
    assert model.fit(x, y, epochs=0, verbose=0).epoch == []
    assert np.array_equal(model.flat_params, before)


@pytest.mark.parametrize("make", [lambda: Adam(float("inf")), lambda: Adam(float("nan")), lambda: Adam(-1e-3),
                                  lambda: Adam(0), lambda: Adam("0.001"), lambda: Adam(1e-3, beta_1=1.0),
                                  lambda: Adam(1e-3, epsilon=float("nan")), lambda: SGD(float("inf")),
                                  lambda: SGD(0.1, momentum=float("nan")), lambda: SGD(0.1, momentum=1)])
def test_optimizer_hyperparameters_are_checked(make):
    with pytest.raises(ValueError, match="must be"):
        make()


# ---------------------------------------------------------------------------------------------------- data
class SlowHandler(BaseHTTPRequestHandler):
    """/slow/...: one byte a second of a 10,008-byte body; /drip/...: headers at one byte a second; /huge/...:
    announces 10^12 bytes; /endless/...: sends zeros without a Content-Length until the client stops reading."""

    def log_message(self, *args):
        pass

    def do_GET(self):  # noqa: N802
        self.send_response(200)
        if self.path.startswith("/drip/"):  # the headers themselves, one byte a second
            try:
                for byte in b"X-Slow: " + b"a" * 10**5:
                    self.wfile.write(bytes([byte]))
                    self.wfile.flush()
                    time.sleep(1.0)
            except OSError:
                pass
            return
        if self.path.startswith("/huge/"):
            self.send_header("Content-Length", str(10**12))
            self.end_headers()
            return
        if self.path.startswith("/slow/"):
            self.send_header("Content-Length", "10008")
        self.end_headers()
        try:
            for _ in range(10**6):
                self.wfile.write(b"\0" if self.path.startswith("/slow/") else bytes(1 << 16))
                self.wfile.flush()
                if self.path.startswith("/slow/"):
                    time.sleep(1.0)
        except OSError:
            pass


@pytest.fixture
def slow_server():
    server = ThreadingHTTPServer(("127.0.0.1", 0), SlowHandler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_a_one_byte_per_second_mirror_fails_fast(slow_server, tmp_path, monkeypatch):
    from mnist_loader import DataNotFound, download
    from mnist_loader.catalog import MNIST

    labels = MNIST.file("test_labels")
    monkeypatch.setattr(download, "GRACE", 2.0)  # the rule as shipped, on a shorter clock (default 10 s)
    started = time.monotonic()
    with pytest.raises(DataNotFound, match="too slow"):
        download.download_file(MNIST, labels, tmp_path, [slow_server + "/slow/"], verbose=False)
    assert time.monotonic() - started < 30
    started = time.monotonic()
    with pytest.raises(DataNotFound, match="response headers within"):  # headers dripped: GRACE + timeout
        download.download_file(MNIST, labels, tmp_path, [slow_server + "/drip/"], verbose=False, timeout=2)
    assert time.monotonic() - started < 30
    monkeypatch.setattr(download, "GRACE", 1e9)
    started = time.monotonic()
    with pytest.raises(DataNotFound, match="took over 3 s"):  # the total deadline, whatever the rate
        download.download_file(MNIST, labels, tmp_path, [slow_server + "/slow/"], verbose=False, deadline=3)
    assert time.monotonic() - started < 30
    assert list(tmp_path.iterdir()) == []


def test_a_download_is_held_to_the_files_byte_budget(slow_server, tmp_path):
    from mnist_loader import DataNotFound, download
    from mnist_loader.catalog import MNIST

    labels = MNIST.file("test_labels")
    with pytest.raises(DataNotFound, match="announces 1,000,000,000,000 bytes"):
        download.download_file(MNIST, labels, tmp_path, [slow_server + "/huge/"], verbose=False)
    with pytest.raises(DataNotFound, match="more than this file can take"):
        download.download_file(MNIST, labels, tmp_path, [slow_server + "/endless/"], verbose=False)
    assert list(tmp_path.iterdir()) == []


def test_a_gzip_bomb_stops_at_the_files_known_size(tmp_path):
    from mnist_loader import DatasetError
    from mnist_loader.catalog import MNIST
    from mnist_loader.datasets import read_checked_file
    from mnist_loader.idx import decompress_if_gzipped

    bomb = gzip.compress(bytes(200 << 20), compresslevel=9)  # 200 MB of zeros in ~200 KB
    path = tmp_path / "t10k-labels-idx1-ubyte.gz"
    path.write_bytes(bomb)
    tracemalloc.start()
    try:
        with pytest.raises(DatasetError, match="decompression bomb"):
            read_checked_file(MNIST, MNIST.file("test_labels"), path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 16 << 20, peak
    with pytest.raises(DatasetError, match="more than 1,000 bytes"):
        decompress_if_gzipped(bomb, "bomb", limit=1000)
    two_members = gzip.compress(b"abc") + gzip.compress(b"def")
    assert decompress_if_gzipped(two_members, limit=6) == b"abcdef"


# ---------------------------------------------------------------------------------------------------- images
def png_bytes(array, **options):
    from PIL import Image

    buffer = io.BytesIO()
    image = Image.fromarray(array)
    image.save(buffer, "PNG" if not options else "JPEG", **options)
    return buffer.getvalue()


def test_a_16_bit_png_is_read_like_its_8_bit_version():
    from minicnn.digits import read_digit

    deep = np.full((100, 100), 65535, np.uint16)
    deep[20:80, 45:55] = 0
    shallow = (deep // 257).astype(np.uint8)
    np.testing.assert_allclose(read_digit(png_bytes(deep)), read_digit(png_bytes(shallow)), atol=1e-3)


def test_exif_orientation_is_applied():
    from PIL import Image

    from minicnn.digits import load_image

    stored = np.full((60, 100), 255, np.uint8)   # stored 100 wide, 60 high...
    stored[25:35, 10:90] = 0
    image = Image.fromarray(stored)
    exif = image.getexif()
    exif[0x0112] = 6                             # ...to be shown turned 90 degrees: 60 wide, 100 high
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", exif=exif.tobytes())
    assert load_image(buffer.getvalue()).shape == (100, 60)


def test_predict_checks_show_before_predicting_and_huge_images_are_refused(tmp_path, capsys):
    from conftest import png_header_only

    from minicnn.commands import predict

    model = Sequential([Flatten(), Dense(10, activation="softmax")], input_shape=(28, 28, 1))
    model.save(tmp_path / "tiny.npz")
    digit = np.full((60, 60), 255, np.uint8)
    digit[10:50, 28:32] = 0
    (tmp_path / "one.png").write_bytes(png_bytes(digit))
    (tmp_path / "huge.png").write_bytes(png_header_only(20_000, 20_000))

    class Arguments:
        model = str(tmp_path / "tiny.npz")
        images = [str(tmp_path / "one.png")]
        show = str(tmp_path / "missing" / "seen.png")

    assert predict.run(Arguments) == 2
    assert "does not exist" in capsys.readouterr().err
    Arguments.show, Arguments.images = None, [str(tmp_path / "huge.png")]
    assert predict.run(Arguments) == 1
    assert "over the limit" in capsys.readouterr().err


def test_train_checks_where_it_saves_before_training(tmp_path):
    (tmp_path / "a-file").write_text("")
    started = time.monotonic()
    result = subprocess.run([sys.executable, str(REPO / "train.py"), "--save", str(tmp_path / "a-file" / "m.npz"),
                             "--epochs", "1", "--limit", "100", "--quiet", "--no-report"],
                            capture_output=True, text=True, timeout=120, cwd=tmp_path,
                            env={**__import__("os").environ, "PYTHONPATH": str(REPO)})
    assert result.returncode == 2, result.stderr
    assert "cannot save the model" in result.stderr and "not a folder" in result.stderr
    assert "data:" not in result.stdout  # refused before the data was loaded
    assert time.monotonic() - started < 60


def test_label_and_input_errors_are_value_errors():
    assert issubclass(InputError, ValueError) and issubclass(LabelError, ValueError)
    assert issubclass(NonFiniteGradientError, NonFiniteLossError)
    assert minicnn.ModelFileError is ModelFileError
