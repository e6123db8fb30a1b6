"""Pieces shared by the benchmark driver (run.py) and its worker processes (workers/*.py).

Everything here is cheap to import: no NumPy, Torch or Keras at module level, so a worker can set its environment
(thread counts, Keras backend) before the heavy libraries load.

The networks are minicnn's ready-made architectures (minicnn/architectures.py), written once in ``SPECS`` and built
from it in PyTorch, Keras and pure JAX: the seed CNN, the default CNN, LeNet-5, the MLP and the reports' models
(report001 with BatchNormalization and Dropout, report003 with leaky ReLU, report004 the seed CNN with an L2
regularizer on its first convolution).

All take 28x28x1 images and are trained with Adam(1e-3) on sparse categorical cross-entropy.
"""
from __future__ import annotations

import itertools
import json
import os
import sys
import time

MODELS = ("seed", "default", "lenet5", "mlp", "report001", "report003", "report004")
MODEL_LABELS = {"seed": "seed CNN", "default": "default CNN", "lenet5": "LeNet-5", "mlp": "MLP",
                "report001": "report001", "report003": "report003", "report004": "report004"}
MINICNN_BUILDERS = {"seed": "seed_cnn", "default": "default_cnn", "lenet5": "lenet5", "mlp": "mlp",
                    "report001": "report001", "report003": "report003", "report004": "report004"}

# contender key -> (label, worker script, extra worker arguments)
CONTENDERS = {
    "minicnn": ("minicnn (fast engine, Numba kernels)", "minicnn_worker.py", ["--engine", "fast"]),
    "minicnn-numpy": ("minicnn (fast plan, NumPy twins)", "minicnn_worker.py", ["--engine", "twins"]),
    "minicnn-reference": ("minicnn (reference engine)", "minicnn_worker.py", ["--engine", "reference"]),
    "torch": ("PyTorch eager, NCHW", "torch_worker.py", ["--layout", "nchw"]),
    "torch-cl": ("PyTorch eager, channels_last", "torch_worker.py", ["--layout", "channels_last"]),
    "keras-jax": ("Keras 3 / JAX", "keras_worker.py", ["--backend", "jax"]),
    "keras-tf": ("Keras 3 / TensorFlow", "keras_worker.py", ["--backend", "tensorflow"]),
    "torch-compile": ("PyTorch torch.compile", "torch_worker.py", ["--layout", "nchw", "--compile"]),
    "jax": ("JAX jax.jit (pure JAX)", "jax_worker.py", []),
    "ort": ("ONNX Runtime (inference)", "ort_worker.py", []),
}
REFERENCE = "torch"  # ratios are taken against this contender, measured in the same rounds
GROUPS = {"minicnn": ("minicnn", "minicnn-numpy", "minicnn-reference"),
         "torch": ("torch", "torch-cl"), "pytorch": ("torch", "torch-cl"),
          "keras": ("keras-jax", "keras-tf"), "minicnn-numba": ("minicnn",), "torch-nchw": ("torch",),
          "peers": ("torch", "torch-compile", "jax", "ort"), "strong": ("torch-compile", "jax", "ort")}

THREADS = 2  # every contender gets both cores of the benchmark machine

BATCH_POOL = 4  # training cycles through this many different random batches
SEED = 1234

ENV_VARS = ("OPENBLAS_CORETYPE", "OPENBLAS_NUM_THREADS", "OPENBLAS_THREAD_TIMEOUT", "OMP_NUM_THREADS",
            "OMP_WAIT_POLICY", "OMP_PROC_BIND", "GOMP_SPINCOUNT", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS",
            "NUMBA_THREADING_LAYER", "NUMBA_CACHE_DIR", "NUMBA_DISABLE_JIT", "KERAS_BACKEND",
            "TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS", "TF_ENABLE_ONEDNN_OPTS", "TF_CPP_MIN_LOG_LEVEL",
            "XLA_FLAGS", "JAX_PLATFORMS", "JAX_ENABLE_X64", "CUDA_VISIBLE_DEVICES")


def relevant_env(environ=None, extra=()):
    """The environment variables that change how the contenders run (set ones only), plus every MINICNN_* and
    the names in ``extra``."""
    environ = os.environ if environ is None else environ
    found = {name: environ[name] for name in (*ENV_VARS, *extra) if name in environ}
    found.update({name: value for name, value in environ.items() if name.startswith("MINICNN_")})
    return dict(sorted(found.items()))


def now():
    return time.perf_counter()


# ---------------------------------------------------------------- data
def random_batches(batch, count=BATCH_POOL, seed=SEED):
    """``count`` (x, y) pairs: x float32 NHWC (batch, 28, 28, 1) in [0, 1), y int64 labels 0..9."""
    import numpy as np

    rng = np.random.default_rng(seed + batch)
    return [(rng.random((batch, 28, 28, 1), dtype=np.float32), rng.integers(0, 10, batch).astype(np.int64))
            for _ in range(count)]


def cycling_step(batches, train_on):
    """A no-argument step function: each call trains with ``train_on(x, y)`` on the next batch, round and round."""
    upcoming = itertools.cycle(batches)
    return lambda: train_on(*next(upcoming))


# ---------------------------------------------------------------- the same networks in every framework
def _conv(filters, kernel, padding, activation="relu", l2=None):
    return {"type": "conv", "filters": filters, "kernel": kernel, "padding": padding, "activation": activation,
            "l2": l2}


def _dense(units, activation="relu"):
    return {"type": "dense", "units": units, "activation": activation}


POOL, FLATTEN, BATCH_NORM = {"type": "pool"}, {"type": "flatten"}, {"type": "batchnorm"}


def _dropout(rate):
    return {"type": "dropout", "rate": rate}


def _report001():
    layers = []
    for filters, convolutions, rate in ((64, 2, 0.3), (128, 2, 0.4), (256, 1, 0.5)):
        for _ in range(convolutions):
            layers += [_conv(filters, 3, "same"), BATCH_NORM]
        layers += [POOL, _dropout(rate)]
    return layers + [FLATTEN, _dense(512), _dropout(0.5), _dense(256), _dropout(0.5), _dense(10, "softmax")]


# minicnn/architectures.py, layer for layer, in a form every framework's builder reads. Convolutions are 'relu'
# (or 'leaky_relu', slope 0.2) before a following BatchNormalization (Keras habit, as minicnn's report001);
# BatchNormalization: momentum 0.99, epsilon 1e-3 (Keras's defaults, minicnn's); MaxPool 2x2; l2 = the factor of
# an L2 kernel and bias regularizer (loss += l2 * sum(w**2)).
SPECS = {
    "seed": [_conv(64, 3, "valid"), POOL, _conv(64, 3, "valid"), POOL, _conv(64, 3, "valid"), POOL, FLATTEN,
             _dense(64), _dense(32), _dense(10, "softmax")],
    "default": [_conv(32, 3, "same"), POOL, _conv(64, 3, "same"), POOL, FLATTEN, _dense(128), _dense(10, "softmax")],
    "lenet5": [_conv(6, 5, "same"), POOL, _conv(16, 5, "valid"), POOL, FLATTEN, _dense(120), _dense(84),
               _dense(10, "softmax")],
    "mlp": [FLATTEN, _dense(256), _dense(128), _dense(10, "softmax")],
    "report001": _report001(),
    "report003": [FLATTEN, _dense(128, "leaky_relu"), _dense(128, "leaky_relu"), _dense(10, "softmax")],
    "report004": [_conv(64, 3, "valid", l2=0.01), POOL, _conv(64, 3, "valid"), POOL, _conv(64, 3, "valid"), POOL,
                  FLATTEN, _dense(64), _dense(32), _dense(10, "softmax")],
}
LEAKY_SLOPE = 0.2
BN_MOMENTUM, BN_EPSILON = 0.99, 1e-3
INPUT_SHAPE = (28, 28, 1)


def shapes(name):
    """[(layer spec, input shape (H, W, C) or (F,), output shape)] for model ``name``."""
    shape, out = INPUT_SHAPE, []
    for layer in SPECS[name]:
        kind = layer["type"]
        if kind == "conv":
            height, width, _ = shape
            shrink = 0 if layer["padding"] == "same" else layer["kernel"] - 1
            new = (height - shrink, width - shrink, layer["filters"])
        elif kind == "pool":
            new = (shape[0] // 2, shape[1] // 2, shape[2])
        elif kind == "flatten":
            new = (shape[0] * shape[1] * shape[2],)
        elif kind == "dense":
            new = (layer["units"],)
        else:
            new = shape
        out.append((layer, shape, new))
        shape = new
    return out


def nominal_flops(name):
    """Nominal floating-point operations per image: {"forward": 2 * MACs of the convolutions and dense layers,
    "train": forward + the input gradient of every such layer but the first + every weight gradient (3x forward
    minus the first layer's input gradient)}. Activations, pooling, normalisation and the optimizer not counted."""
    macs = []
    for layer, shape_in, shape_out in shapes(name):
        if layer["type"] == "conv":
            macs.append(shape_out[0] * shape_out[1] * shape_out[2] * layer["kernel"] ** 2 * shape_in[2])
        elif layer["type"] == "dense":
            macs.append(shape_in[0] * shape_out[0])
    forward = 2 * sum(macs)
    return {"forward": forward, "train": 3 * forward - 2 * macs[0]}


def torch_model(name):
    """minicnn's architecture ``name`` in PyTorch (NCHW, outputs logits; predict applies softmax). The network's
    ``l2_penalties`` lists (parameter, factor) pairs for the training loss."""
    from torch import nn

    layers, penalties = [], []
    for layer, shape_in, shape_out in shapes(name):
        kind = layer["type"]
        if kind in ("conv", "dense"):
            if kind == "conv":
                module = nn.Conv2d(shape_in[2], layer["filters"], layer["kernel"],
                                   padding=(layer["kernel"] - 1) // 2 if layer["padding"] == "same" else 0)
            else:
                module = nn.Linear(shape_in[0], layer["units"])
            layers.append(module)
            if layer.get("l2"):
                penalties += [(module.weight, layer["l2"]), (module.bias, layer["l2"])]
            if layer["activation"] == "relu":
                layers.append(nn.ReLU())
            elif layer["activation"] == "leaky_relu":
                layers.append(nn.LeakyReLU(LEAKY_SLOPE))
        elif kind == "pool":
            layers.append(nn.MaxPool2d(2))
        elif kind == "flatten":
            layers.append(nn.Flatten())
        elif kind == "batchnorm":
            norm = nn.BatchNorm2d if len(shape_in) == 3 else nn.BatchNorm1d
            layers.append(norm(shape_in[-1], eps=BN_EPSILON, momentum=1 - BN_MOMENTUM))
        elif kind == "dropout":
            layers.append(nn.Dropout(layer["rate"]))
    network = nn.Sequential(*layers)
    network.l2_penalties = penalties
    return network


def torch_loss(network, logits, y):
    """Cross-entropy plus the network's L2 penalties (report004)."""
    import torch

    loss = torch.nn.functional.cross_entropy(logits, y)
    for parameter, factor in getattr(network, "l2_penalties", ()):
        loss = loss + factor * parameter.pow(2).sum()
    return loss


def keras_model(name):
    """minicnn's architecture ``name`` in Keras 3 (NHWC, ends in softmax), not compiled."""
    import keras
    from keras import layers

    stack = []
    for layer, _shape_in, _shape_out in shapes(name):
        kind = layer["type"]
        if kind in ("conv", "dense"):
            activation = layer["activation"]
            if activation == "leaky_relu":
                activation = lambda t: keras.activations.leaky_relu(t, LEAKY_SLOPE)  # noqa: E731
            regularizer = {"kernel_regularizer": keras.regularizers.L2(layer["l2"]),
                           "bias_regularizer": keras.regularizers.L2(layer["l2"])} if layer.get("l2") else {}
            if kind == "conv":
                stack.append(layers.Conv2D(layer["filters"], layer["kernel"], padding=layer["padding"],
                                           activation=activation, **regularizer))
            else:
                stack.append(layers.Dense(layer["units"], activation=activation, **regularizer))
        elif kind == "pool":
            stack.append(layers.MaxPooling2D(2))
        elif kind == "flatten":
            stack.append(layers.Flatten())
        elif kind == "batchnorm":
            stack.append(layers.BatchNormalization(momentum=BN_MOMENTUM, epsilon=BN_EPSILON))
        elif kind == "dropout":
            stack.append(layers.Dropout(layer["rate"]))
    return keras.Sequential([keras.Input(INPUT_SHAPE)] + stack, name=name)


# ---------------------------------------------------------------- worker protocol (JSON lines)
class Channel:
    """A worker's end of the pipe: JSON requests on stdin, JSON answers on a private copy of stdout.

    Everything else the process prints (library banners, warnings, print()) is sent to stderr, so it can never
    corrupt the protocol."""

    def __init__(self):
        self._out = os.fdopen(os.dup(1), "w", buffering=1)
        os.dup2(2, 1)
        sys.stdout = sys.stderr

    def requests(self):
        for line in sys.stdin:
            line = line.strip()
            if line:
                yield json.loads(line)

    def send(self, message):
        self._out.write(json.dumps(message) + "\n")
        self._out.flush()


def serve(build_handlers):
    """Run a worker: answer each request {"op": name, ...} with handlers[name](request) until "quit".

    ``build_handlers()`` is called after stdout is redirected, so nothing the libraries print on import can reach
    the protocol pipe."""
    channel = Channel()
    handlers = build_handlers()
    for request in channel.requests():
        op = request.get("op")
        if op == "quit":
            channel.send({"ok": True})
            break
        try:
            result = handlers[op](request)
            channel.send({"ok": True, "result": result})
        except Exception as error:  # report, keep serving
            import traceback

            traceback.print_exc()
            channel.send({"ok": False, "error": f"{type(error).__name__}: {error}"})


def timed_loop(step, budget, max_steps, min_steps=1):
    """Call ``step()`` until ``budget`` seconds have passed (at least min_steps, at most max_steps times).

    Returns (seconds, steps). The clock is read once per call, so overhead is one perf_counter per step."""
    start = now()
    steps = 0
    elapsed = 0.0
    while steps < max_steps and (steps < min_steps or elapsed < budget):
        step()
        steps += 1
        elapsed = now() - start
    return elapsed, steps


def latency_loop(call, budget, max_calls, min_calls=3):
    """Time single calls of ``call()`` until the budget is spent; returns the list of per-call seconds."""
    times = []
    start = now()
    while len(times) < max_calls and (len(times) < min_calls or now() - start < budget):
        t0 = now()
        call()
        times.append(now() - t0)
    return times


def blas_info():
    """threadpoolctl's view of the BLAS/OpenMP libraries loaded in this process (small dicts)."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return []
    keep = ("user_api", "internal_api", "prefix", "version", "num_threads", "architecture", "threading_layer")
    return [{key: entry.get(key) for key in keep if entry.get(key) is not None} for entry in threadpool_info()]


def peak_rss_mb():
    """This process's peak resident set size so far, in MB (10^6 bytes)."""
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak * (1 if sys.platform == "darwin" else 1024) / 1e6


def current_rss_mb():
    try:
        with open("/proc/self/statm") as file:
            return int(file.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e6
    except OSError:
        return None


def make_handlers(backend):
    """The request handlers every throughput worker shares. ``backend`` provides

    * ``info()``: a dict of versions and thread settings;
    * ``train_step(model, batch)``: a callable doing one forward + backward + Adam step on the next batch;
    * ``predictor(model, batch)``: a callable predicting (probabilities of) one fixed batch;
    * ``save(model, path)``: writes the model where a fresh process can load it, returns the path written.
    """
    callables = {}

    def cached(kind, model, batch):
        """The callable and, the first time, the seconds its building and first call took (where JIT compilers
        and tracers do their work: minicnn's Numba kernels, torch.compile, jax.jit, ONNX export + session)."""
        key = (kind, model, batch)
        if key in callables:
            return callables[key], None
        start = now()
        factory = backend.train_step if kind == "train" else backend.predictor
        function = factory(model, batch)
        function()
        callables[key] = function
        return function, now() - start

    def train(request):
        batch = int(request["batch"])
        step, first = cached("train", request["model"], batch)
        seconds, steps = timed_loop(step, float(request["budget"]), int(request["steps"]),
                                    int(request.get("min_steps", 1)))
        return {"seconds": seconds, "steps": steps, "value": steps * batch / seconds, "first_call_s": first}

    def infer(request):
        batch = int(request["batch"])
        predict, first = cached("predict", request["model"], batch)
        seconds, steps = timed_loop(predict, float(request["budget"]), int(request["steps"]),
                                    int(request.get("min_steps", 1)))
        return {"seconds": seconds, "steps": steps, "value": steps * batch / seconds, "first_call_s": first}

    def latency(request):
        predict, first = cached("predict", request["model"], 1)
        times = latency_loop(predict, float(request["budget"]), int(request["calls"]))
        times.sort()
        return {"calls": len(times), "value": times[len(times) // 2] * 1e3, "min_ms": times[0] * 1e3,
                "first_call_s": first}

    def save(request):
        return {"path": str(backend.save(request["model"], request["path"]))}

    def hello(request):
        return backend.info()

    handlers = {"hello": hello, "train": train, "infer": infer, "latency": latency, "save": save}
    handlers.update(getattr(backend, "extra_handlers", dict)())
    return handlers
