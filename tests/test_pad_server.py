"""minicnn pad's server on 127.0.0.1, in a thread: a good prediction, every refusal (each a 4xx JSON message,
after which the server still answers), the models listing, and the server-side time per prediction (printed, not
asserted: run with -s to see it)."""
import base64
import http.client
import io
import json
import threading
import time

import numpy as np
import pytest
from conftest import png_header_only
from PIL import Image, ImageDraw

from minicnn.pad.server import PadServer


def drawn_one(size=280, dark=True):
    """A '1' as the pad's canvas sends it: black ink on white (or the reverse), as PNG bytes."""
    image = Image.new("L", (size, size), 255 if dark else 0)
    ImageDraw.Draw(image).line([(size * 0.52, size * 0.15), (size * 0.48, size * 0.85)], fill=0 if dark else 255,
                               width=size // 14)
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def server(digit_models):
    (digit_models / "broken.npz").write_bytes(b"not a model")
    pad = PadServer(("127.0.0.1", 0), model=digit_models / "mnist-default.npz", folder=digit_models,
                    max_body=2_000_000, max_pixels=4_000_000)
    thread = threading.Thread(target=pad.serve_forever, daemon=True)
    thread.start()
    yield pad
    pad.shutdown()
    pad.server_close()


def call(server, method, path, body=None, headers=None, length=True):
    """(status, decoded JSON) for one request; ``length=False`` sends no Content-Length."""
    host, port = server.server_address[:2]
    connection = http.client.HTTPConnection(host, port, timeout=60)
    connection.putrequest(method, path)
    for name, value in (headers or {}).items():
        connection.putheader(name, value)
    if body is not None and length:
        connection.putheader("Content-Length", str(len(body)))
    connection.endheaders()
    if body is not None:
        connection.send(body)
    response = connection.getresponse()
    payload = response.read()
    connection.close()
    assert response.getheader("Content-Type") == "application/json", payload[:200]
    return response.status, json.loads(payload)


def assert_refused(answer, status, *words):
    assert answer[0] == status, answer
    assert set(answer[1]) == {"error", "status"} and answer[1]["status"] == status
    for word in words:
        assert word in answer[1]["error"], answer[1]["error"]


def test_the_page_is_served_whole_and_offline(server):
    host, port = server.server_address[:2]
    connection = http.client.HTTPConnection(host, port, timeout=30)
    connection.request("GET", "/")
    response = connection.getresponse()
    page = response.read().decode()
    assert response.status == 200 and response.getheader("Content-Type").startswith("text/html")
    assert "<canvas id=\"pad\"" in page and "/api/predict" in page
    assert "http://" not in page and "https://" not in page  # no CDN, nothing fetched from elsewhere


def test_augmentation_layers_are_not_shown_they_do_nothing_at_inference():
    """train.py's default model starts with RandomRotation/Translation/Zoom (training only): the page shows the
    layers after them, the same maps as the model without them."""
    import minicnn
    from minicnn.architectures import with_augmentation
    from minicnn.layers import RandomRotation, RandomTranslation, RandomZoom
    from minicnn.pad.server import predict

    plain = minicnn.default_cnn(seed=0)
    augmented = with_augmentation(plain, [RandomRotation(0.03), RandomTranslation(0.05, 0.05), RandomZoom(0.1)])
    image = np.zeros((28, 28), np.float32)
    image[6:22, 13:15] = 1
    ours, theirs = predict(augmented, image), predict(plain, image)
    assert [layer.name for layer in augmented.layers[:3]] == ["random_rotation", "random_translation", "random_zoom"]
    assert [layer["name"] for layer in ours["layers"]] == [layer.name for layer in plain.layers]
    assert ours["layers"] == theirs["layers"] and ours["probabilities"] == theirs["probabilities"]


def test_a_drawn_digit_is_predicted_with_every_layer(server, digit_models):
    import minicnn

    status, answer = call(server, "POST", "/api/predict", drawn_one(), {"Content-Type": "image/png"})
    assert status == 200, answer
    assert answer["digit"] == 1
    assert len(answer["probabilities"]) == 10 and sum(answer["probabilities"]) == pytest.approx(1, abs=1e-4)
    assert answer["digit"] == int(np.argmax(answer["probabilities"]))
    image = np.array(answer["input"])
    assert image.shape == (28, 28) and 0 <= image.min() and image.max() <= 1
    model = minicnn.load_model(digit_models / "mnist-default.npz")
    assert [layer["name"] for layer in answer["layers"]] == [layer.name for layer in model.layers]
    first = answer["layers"][0]
    assert first["shape"] == [28, 28, 32] and first["map_shape"] == [28, 28] and len(first["maps"]) == 32
    decoded = np.frombuffer(base64.b64decode(first["maps"][0]), np.uint8).reshape(first["map_shape"])
    assert decoded.max() <= 255
    dense = [layer for layer in answer["layers"] if layer["type"] == "Dense"]
    assert len(dense[-1]["values"]) == 10
    assert answer["filters"]["shape"] == [3, 3, 1, 32] and len(answer["filters"]["maps"]) == 32
    # the model's own predict agrees with the API
    expected = model.predict(image[None, :, :, None].astype(np.float32))[0]
    assert np.allclose(answer["probabilities"], expected, atol=1e-3)
    assert len(json.dumps(answer)) < 200_000  # small enough to ask for it live while drawing


def test_either_polarity_json_and_prediction_only(server):
    dark = call(server, "POST", "/api/predict?layers=0", drawn_one(dark=True), {"Content-Type": "image/png"})[1]
    light = call(server, "POST", "/api/predict?layers=0", drawn_one(dark=False), {"Content-Type": "image/png"})[1]
    assert "layers" not in dark and dark["digit"] == light["digit"] == 1
    assert np.allclose(dark["input"], light["input"], atol=0.02)
    data_url = "data:image/png;base64," + base64.b64encode(drawn_one()).decode()
    body = json.dumps({"image": data_url, "model": "mnist-lenet5.npz"}).encode()
    status, answer = call(server, "POST", "/api/predict", body, {"Content-Type": "application/json"})
    assert status == 200 and answer["model"] == "mnist-lenet5.npz"
    assert answer["layers"][0]["shape"] == [28, 28, 6]


def test_the_models_are_listed_and_picked_by_name(server):
    status, answer = call(server, "GET", "/api/models")
    assert status == 200 and answer["default"] == "mnist-default.npz"
    names = [model["name"] for model in answer["models"]]
    assert names == ["mnist-default.npz", "broken.npz", "mnist-lenet5.npz"]
    assert "1 epoch (a test fixture)" in answer["models"][0]["description"]
    assert answer["models"][0]["layers"][0] == {"name": "conv2d", "type": "Conv2D", "shape": [28, 28, 32]}
    assert "error" in answer["models"][1]  # a broken file is listed with what is wrong with it
    status, answer = call(server, "POST", "/api/predict?model=mnist-lenet5.npz&layers=0", drawn_one())
    assert status == 200 and answer["model"] == "mnist-lenet5.npz"


def test_every_refusal_is_a_4xx_message_and_the_server_goes_on(server):
    png = {"Content-Type": "image/png"}
    json_type = {"Content-Type": "application/json"}
    # a body over the limit: refused from its Content-Length, before a byte of it is sent
    assert_refused(call(server, "POST", "/api/predict", None, {"Content-Length": str(10**9)}), 413,
                   "1,000,000,000 bytes, over the limit of 2,000,000")
    assert_refused(call(server, "POST", "/api/predict", b"x" * 2_000_001, png), 413, "over the limit")
    assert_refused(call(server, "POST", "/api/predict", drawn_one(), png, length=False), 411, "Content-Length")
    assert_refused(call(server, "POST", "/api/predict", b"", png), 400, "empty")
    # images: over the pixel limit (refused from the header, never decoded), not an image, blank
    assert_refused(call(server, "POST", "/api/predict", png_header_only(60_000, 60_000), png), 413,
                   "over the limit")
    assert_refused(call(server, "POST", "/api/predict", png_header_only(3000, 3000), png), 413,
                   "9,000,000 pixels, over the limit of 4,000,000")
    assert_refused(call(server, "POST", "/api/predict", b"%PDF-1.4 not an image", png), 415, "not a readable image")
    blank = io.BytesIO()
    Image.new("L", (200, 200), 255).save(blank, "PNG")
    assert_refused(call(server, "POST", "/api/predict", blank.getvalue(), png), 422, "blank")
    # JSON
    assert_refused(call(server, "POST", "/api/predict", b'{"image": ', json_type), 400, "malformed JSON")
    assert_refused(call(server, "POST", "/api/predict", b'["a list"]', json_type), 400, '{"image"')
    assert_refused(call(server, "POST", "/api/predict", b'{"image": "***"}', json_type), 400, "base64")
    assert_refused(call(server, "POST", "/api/predict", json.dumps({"image": "", "model": 3}).encode(), json_type),
                   400, '"model"')
    # models: outside the folder, not there, broken
    for outside in ("../mnist-default.npz", "/etc/passwd", "..%2Fsecret.npz", "sub/dir.npz", "notes.txt"):
        assert_refused(call(server, "POST", f"/api/predict?model={outside}", drawn_one(), png), 400,
                       "not a .npz file in the models folder")
    assert_refused(call(server, "POST", "/api/predict?model=missing.npz", drawn_one(), png), 404, "no model file")
    assert_refused(call(server, "POST", "/api/predict?model=broken.npz", drawn_one(), png), 422, "broken.npz")
    # paths and methods
    assert_refused(call(server, "GET", "/etc/passwd"), 404, "no such page")
    assert_refused(call(server, "GET", "/api/predict"), 404, "no such page")
    assert_refused(call(server, "POST", "/api/nothing", b"{}", json_type), 404, "no such endpoint")
    assert_refused(call(server, "DELETE", "/api/models"), 405, "only GET and POST")
    # and it still serves
    status, answer = call(server, "POST", "/api/predict", drawn_one(), png)
    assert status == 200 and answer["digit"] == 1


def test_server_side_time_per_prediction(server):
    """Server-side milliseconds per POST /api/predict of a 280x280 canvas PNG (read_digit + every layer), and
    the round trip; printed for the notes, never asserted (the machine is shared)."""
    body = drawn_one()
    call(server, "POST", "/api/predict", body)
    server_side, round_trip = [], []
    for _ in range(20):
        started = time.perf_counter()
        status, answer = call(server, "POST", "/api/predict", body, {"Content-Type": "image/png"})
        round_trip.append((time.perf_counter() - started) * 1000)
        server_side.append(answer["milliseconds"])
    print(f"\npad latency, 20 requests of a 280x280 PNG with every layer: server side median "
          f"{np.median(server_side):.1f} ms (min {min(server_side):.1f}), round trip median "
          f"{np.median(round_trip):.1f} ms")


def test_the_pad_command_serves_until_stopped(digit_models):
    """`minicnn pad --port 0 --no-browser` as a user runs it: prints its address, serves the page and the API."""
    import os
    import signal
    import subprocess
    import sys
    import urllib.request

    environment = dict(os.environ, MINICNN_MODELS=str(digit_models))
    process = subprocess.Popen([sys.executable, "-m", "minicnn", "pad", "--port", "0", "--no-browser"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=environment)
    try:
        first = process.stdout.readline()
        assert first.startswith("minicnn pad: http://127.0.0.1:"), first + process.stderr.read()
        url = first.split()[2]
        assert process.stdout.readline().strip() == f"model: {digit_models / 'mnist-default.npz'}"
        with urllib.request.urlopen(url + "api/models", timeout=60) as response:
            assert json.loads(response.read())["default"] == "mnist-default.npz"
    finally:
        process.send_signal(signal.SIGINT)
        output, _ = process.communicate(timeout=60)
    assert process.returncode == 0 and "stopped" in output
