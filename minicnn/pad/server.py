"""The digit pad's web server: one page (page.html, beside this file) and a small JSON API, standard library only.

    GET  /                 the page: draw a digit, watch every layer answer
    GET  /api/models       {"default": NAME, "folder": PATH, "models": [{"name", "description", "layers"}...]}
    POST /api/predict      body: an image file (PNG, JPEG, ...; any size up to the limits; either polarity),
                           or JSON {"image": BASE64 or a data: URL, "model": NAME}; ?model=NAME picks a model
                           from the models folder, ?layers=0 leaves out the layers (prediction only)
        -> {"digit": int, "probabilities": [10 floats], "input": 28x28 floats in [0, 1], "model": NAME,
            "layers": [{"name", "type", "shape", "range", "maps" (base64 bytes, see describe_layer) or "values"}],
            "filters": {...}, "milliseconds"}

Refusals are JSON {"error": MESSAGE} with a 4xx status, and the server keeps serving: a body over ``max_body``
bytes (413, judged from Content-Length before reading), no Content-Length (411), an image over ``max_pixels``
(413), a body that is no image (415), a blank image (422), malformed JSON (400), a model name outside the models
folder (400) or not in it (404), unknown paths (404). Meant for 127.0.0.1: http.server has only basic security.
"""
from __future__ import annotations

import base64
import binascii
import json
import sys
import threading
import time
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import numpy as np

from minicnn.digits import MAX_PIXELS, ImageProblem, ImageTooLarge, UnreadableImage, read_digit
from minicnn.errors import ModelFileError
from minicnn.model import load_model
from minicnn.paths import find_model, models_dir

PAGE = Path(__file__).with_name("page.html")
MAX_BODY = 8 * 1024 * 1024  # bytes: a phone photo as JPEG fits
DRAIN_AT_MOST = 64 * 1024 * 1024  # bytes of a refused body read and dropped; beyond, the connection is cut
MAX_MAPS = 32  # feature maps sent per layer (the first ones); the response stays around 100-200 KB
MAX_SIDE = 28  # feature maps larger than this are averaged down
MAX_VALUES = 256  # values sent for a 1-D layer (a dense layer's units)


class Refusal(Exception):
    """A request the server answers with a 4xx status and a JSON message."""

    def __init__(self, status, message):
        super().__init__(message)
        self.status = int(status)
        self.message = message


# ---------------------------------------------------------------------------------------------------- the models
class ModelShelf:
    """The models the pad can use: the default one (--model, anywhere) and every .npz in the models folder.
    Loaded on first use and kept (reloaded if the file changes); one lock, since a model's engine reuses buffers."""

    def __init__(self, default=None, folder=None):
        self.folder = Path(folder or models_dir()).resolve()
        self.default = Path(default).resolve() if default else find_model("mnist", "default")
        self.loaded = {}  # path -> (modification time, model)
        self.lock = threading.Lock()

    def names(self):
        """The models folder's .npz files, by name, the default first."""
        found = sorted(path.name for path in self.folder.glob("*.npz")) if self.folder.is_dir() else []
        default = self.default_name()
        return [default] + [name for name in found if name != default] if self.default.exists() else found

    def default_name(self):
        return self.default.name if self.default.parent == self.folder else str(self.default)

    def path(self, name):
        """The file for a model name: the default for None, '' or its own name; else a file in the models folder.
        Names that lead outside the folder (a path, '..') are refused."""
        if not name or name in (self.default_name(), self.default.name):
            path = self.default
        else:
            path = (self.folder / name).resolve()
            if path.parent != self.folder or path.suffix != ".npz":
                raise Refusal(HTTPStatus.BAD_REQUEST, f"model {name!r} is not a .npz file in the models folder "
                                                      f"{self.folder}: pick one of GET /api/models")
        if not path.is_file():
            raise Refusal(HTTPStatus.NOT_FOUND, f"no model file {path}: train one with `python train.py` (it "
                                                f"saves to {self.folder}), or start the pad with --model FILE")
        return path

    def get(self, name=None):
        """(path, model) for a model name (see ``path``), loaded once and warmed up."""
        path = self.path(name)
        stamp = path.stat().st_mtime
        with self.lock:
            cached = self.loaded.get(path)
            if cached is None or cached[0] != stamp:
                try:
                    model = load_model(path)
                except ModelFileError as error:
                    raise Refusal(HTTPStatus.UNPROCESSABLE_ENTITY, str(error)) from None
                if tuple(model.input_shape) != (28, 28, 1):
                    raise Refusal(HTTPStatus.UNPROCESSABLE_ENTITY, f"{path.name} takes images of shape "
                                  f"{tuple(model.input_shape)}, not 28x28x1: the pad is for MNIST-style digits")
                model.warm_up()
                self.loaded[path] = cached = (stamp, model)
        return path, cached[1]

    def describe(self, name):
        """{"name", "description", "layers"} for /api/models (loads the model)."""
        path, model = self.get(name)
        record = getattr(model, "metadata", None) or {}
        details = [record.get("data"), record.get("training")]
        if record.get("test_accuracy") is not None:
            details.append(f"test accuracy {record['test_accuracy'] * 100:.2f}%")
        return {"name": name, "path": str(path), "description": "; ".join(d for d in details if d) or "no record",
                "layers": [{"name": layer.name, "type": type(layer).__name__, "shape": list(layer.output_shape)}
                           for layer in model.layers if not getattr(layer, "augments", False)]}


# ---------------------------------------------------------------------------------------------------- predicting
def shrink_map(image, side=MAX_SIDE):
    """A 2-D map averaged down by a whole factor until no side exceeds ``side``."""
    factor = int(np.ceil(max(image.shape) / side))
    if factor <= 1:
        return image
    height, width = (image.shape[0] // factor) * factor, (image.shape[1] // factor) * factor
    return image[:height, :width].reshape(height // factor, factor, width // factor, factor).mean(axis=(1, 3))


def describe_layer(layer, output):
    """One layer's output for one image, for the page: 3-D outputs as up to MAX_MAPS maps, each the base64 of
    its bytes (0-255 across the layer's range, row by row, ``map_shape`` rows x columns; in Python
    ``np.frombuffer(base64.b64decode(text), np.uint8).reshape(map_shape)``), 1-D outputs as values (up to
    MAX_VALUES), Flatten as nothing new."""
    output = output[0]
    entry = {"name": layer.name, "type": type(layer).__name__, "shape": list(output.shape)}
    if type(layer).__name__ == "Flatten":
        entry["values"] = []
        return entry
    low, high = float(output.min()), float(output.max())
    entry["range"] = [round(low, 5), round(high, 5)]
    if output.ndim == 3:
        count = min(output.shape[2], MAX_MAPS)
        scale = 255 / (high - low) if high > low else 0.0
        maps = [np.rint((shrink_map(output[:, :, channel]) - low) * scale).astype(np.uint8)
                for channel in range(count)]
        entry["map_shape"] = list(maps[0].shape)
        entry["maps"] = [base64.b64encode(image.tobytes()).decode() for image in maps]
        entry["maps_shown"] = count
    else:
        entry["values"] = np.round(output.ravel()[:MAX_VALUES].astype(float), 5).tolist()
    return entry


def first_filters(model):
    """The first convolution's filters for the page: {"name", "shape", "maps": one 2-D map per filter (the mean
    over input channels), "range"}, or None if the model has no convolution."""
    for layer in model.layers:
        if type(layer).__name__ == "Conv2D":
            kernel = np.asarray(layer.kernel.value, dtype=float)  # (height, width, in, out)
            maps = kernel.mean(axis=2)
            limit = float(np.abs(maps).max()) or 1.0
            return {"name": layer.name, "shape": list(kernel.shape), "range": [-limit, limit],
                    "maps": [np.round(maps[:, :, index] / limit, 4).tolist()
                             for index in range(min(maps.shape[2], MAX_MAPS * 2))]}
    return None


def predict(model, image, with_layers=True):
    """The API's answer for an image already read (float32 28x28): digit, probabilities, input, layers."""
    batch = image[None, :, :, None]
    outputs = model.activations(batch)
    probabilities = outputs[-1][1][0].astype(float)
    if not model.ends_with_softmax:
        probabilities = np.exp(probabilities - probabilities.max())
        probabilities /= probabilities.sum()
    answer = {"digit": int(np.argmax(probabilities)), "probabilities": np.round(probabilities, 6).tolist(),
              "input": np.round(image.astype(float), 3).tolist()}
    if with_layers:
        answer["layers"] = [describe_layer(layer, output) for layer, (_, output) in zip(model.layers, outputs)
                            if not getattr(layer, "augments", False)]  # (augmentation: training only, y = x here)
        answer["filters"] = first_filters(model)
    return answer


# ---------------------------------------------------------------------------------------------------- HTTP
class PadServer(ThreadingHTTPServer):
    """ThreadingHTTPServer with the pad's settings: the models, and the limits on bodies and images."""

    daemon_threads = True

    def __init__(self, address=("127.0.0.1", 8000), model=None, folder=None, max_body=MAX_BODY,
                 max_pixels=MAX_PIXELS, quiet=True):
        self.shelf = ModelShelf(model, folder)
        self.max_body = int(max_body)
        self.max_pixels = int(max_pixels)
        self.quiet = quiet
        super().__init__(address, PadHandler)

    @property
    def url(self):
        host, port = self.server_address[:2]
        return f"http://{'127.0.0.1' if host in ('0.0.0.0', '') else host}:{port}/"


class PadHandler(BaseHTTPRequestHandler):
    server_version = "minicnn-pad"
    protocol_version = "HTTP/1.1"
    timeout = 30  # seconds a connection may sit idle or trickle a body before it is closed

    def log_message(self, format, *args):  # noqa: A002 (http.server's name)
        if not self.server.quiet:
            sys.stderr.write(f"{self.address_string()} {format % args}\n")

    # -------------------------------------------------------------------------------- answers
    def send_json(self, status, payload):
        body = json.dumps(payload, separators=(",", ":")).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def refuse(self, refusal):
        self.send_json(refusal.status, {"error": refusal.message, "status": refusal.status})

    def answer(self, work):
        """Run ``work()`` -> (status, payload); a Refusal becomes its 4xx, anything else a 500 without a
        traceback (one line on stderr), and the server goes on."""
        try:
            status, payload = work()
            self.send_json(status, payload)
        except Refusal as refusal:
            self.refuse(refusal)
        except Exception as error:  # noqa: BLE001 (the server must keep serving)
            sys.stderr.write(f"minicnn pad: {self.command} {self.path}: {type(error).__name__}: {error}\n")
            self.send_json(500, {"error": f"internal error: {type(error).__name__}: {error}", "status": 500})

    # -------------------------------------------------------------------------------- routes
    def do_GET(self):  # noqa: N802 (http.server's name)
        route = urlsplit(self.path).path
        if route in ("/", "/index.html"):
            body = PAGE.read_bytes()
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        elif route == "/api/models":
            self.answer(self.models)
        else:
            self.refuse(Refusal(HTTPStatus.NOT_FOUND, f"no such page: {route} (the API: GET /api/models, "
                                                      "POST /api/predict)"))

    def do_POST(self):  # noqa: N802
        parts = urlsplit(self.path)
        if parts.path != "/api/predict":
            self.discard_body()
            self.refuse(Refusal(HTTPStatus.NOT_FOUND, f"no such endpoint: POST {parts.path} (POST /api/predict)"))
            return
        self.answer(lambda: self.predict(parse_qs(parts.query)))

    def do_PUT(self):  # noqa: N802
        self.discard_body()
        self.refuse(Refusal(HTTPStatus.METHOD_NOT_ALLOWED, "only GET and POST are served"))

    do_DELETE = do_PATCH = do_PUT  # noqa: N815

    # -------------------------------------------------------------------------------- the API
    def models(self):
        shelf = self.server.shelf
        entries = []
        for name in shelf.names():
            try:
                entries.append(shelf.describe(name))
            except Refusal as refusal:
                entries.append({"name": name, "error": refusal.message})
        return 200, {"default": shelf.default_name() if shelf.default.exists() else None,
                     "folder": str(shelf.folder), "models": entries, "max_body": self.server.max_body,
                     "max_pixels": self.server.max_pixels}

    def discard_body(self):
        """Read and drop a small body so the connection stays usable; a large or unknown one closes it."""
        length = self.headers.get("Content-Length")
        if length and length.isdigit() and int(length) <= self.server.max_body:
            self.rfile.read(int(length))
        elif length:
            self.close_connection = True

    def drain(self, length, most=DRAIN_AT_MOST, chunk=1 << 16):
        """Refusing a body over the limit: read and drop it in chunks (never held in memory) if it is at most
        ``most`` bytes, so the client, which is still sending, gets the answer rather than a reset connection;
        a larger one is not read at all and the connection closed."""
        self.close_connection = True
        if length > most:
            return
        while length > 0:
            received = self.rfile.read(min(chunk, length))
            if not received:
                break
            length -= len(received)

    def read_body(self):
        """The request body, refused before reading if Content-Length is missing, malformed or over the limit."""
        length = self.headers.get("Content-Length")
        if length is None:
            self.close_connection = True
            raise Refusal(HTTPStatus.LENGTH_REQUIRED, "send the image with a Content-Length header")
        if not length.strip().isdigit():
            self.close_connection = True
            raise Refusal(HTTPStatus.BAD_REQUEST, f"Content-Length {length!r} is not a number of bytes")
        if int(length) > self.server.max_body:
            self.drain(int(length))
            raise Refusal(HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                          f"the body is {int(length):,} bytes, over the limit of {self.server.max_body:,}: send a "
                          "smaller image (a digit needs a few hundred pixels a side)")
        if int(length) == 0:
            raise Refusal(HTTPStatus.BAD_REQUEST, "the body is empty: send an image file (PNG or JPEG)")
        return self.rfile.read(int(length))

    def predict(self, query):
        started = time.perf_counter()
        body = self.read_body()
        model_name = (query.get("model") or [None])[0]
        with_layers = (query.get("layers") or ["1"])[0] not in ("0", "false", "no")
        content_type = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        if content_type == "application/json":
            image_bytes, model_name = self.parse_json(body, model_name)
        else:
            image_bytes = body
        _, model = self.server.shelf.get(model_name)
        try:
            image = read_digit(image_bytes, max_pixels=self.server.max_pixels)
        except ImageTooLarge as error:
            raise Refusal(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, str(error)) from None
        except UnreadableImage as error:
            raise Refusal(HTTPStatus.UNSUPPORTED_MEDIA_TYPE, str(error)) from None
        except ImageProblem as error:
            raise Refusal(HTTPStatus.UNPROCESSABLE_ENTITY, str(error)) from None
        with self.server.shelf.lock:
            answer = predict(model, image, with_layers)
        answer["model"] = model_name or self.server.shelf.default_name()
        answer["milliseconds"] = round((time.perf_counter() - started) * 1000, 2)
        return 200, answer

    @staticmethod
    def parse_json(body, model_name):
        """{"image": base64 or a data: URL, "model": NAME} -> (image bytes, model name)."""
        try:
            request = json.loads(body)
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            raise Refusal(HTTPStatus.BAD_REQUEST, f"malformed JSON: {error}") from None
        if not isinstance(request, dict) or not isinstance(request.get("image"), str):
            raise Refusal(HTTPStatus.BAD_REQUEST, 'expected JSON {"image": BASE64 or a data: URL, "model": NAME}')
        encoded = request["image"]
        if encoded.startswith("data:"):
            encoded = encoded.partition(",")[2]
        try:
            image_bytes = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError) as error:
            raise Refusal(HTTPStatus.BAD_REQUEST, f"the image is not valid base64: {error}") from None
        model = request.get("model", model_name)
        if model is not None and not isinstance(model, str):
            raise Refusal(HTTPStatus.BAD_REQUEST, '"model" must be a model name (GET /api/models lists them)')
        return image_bytes, model


def serve(host="127.0.0.1", port=8000, model=None, folder=None, open_browser=True, quiet=True):
    """Start the pad, print its address, open the browser unless told not to; serve until Ctrl+C."""
    import webbrowser

    server = PadServer((host, port), model=model, folder=folder, quiet=quiet)
    print(f"minicnn pad: {server.url}  (Ctrl+C stops it)")
    shelf = server.shelf
    if shelf.default.exists():
        try:
            shelf.get(None)
            print(f"model: {shelf.default}")
        except Refusal as refusal:
            print(f"warning: {refusal.message}", file=sys.stderr)
    else:
        print(f"warning: no model file {shelf.default}: train one with `python train.py`, or pass --model FILE",
              file=sys.stderr)
    if open_browser:
        threading.Timer(0.3, webbrowser.open, args=(server.url,)).start()
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        print("\nminicnn pad: stopped")
    finally:
        server.server_close()
    return 0
