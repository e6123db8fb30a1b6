"""Pieces shared by the benchmark driver (run.py) and its worker processes (workers/*.py).

Everything here is cheap to import: no NumPy, Torch or Keras at module level, so a worker can set its environment
(thread counts, Keras backend) before the heavy libraries load.

The networks are minicnn's own (minicnn/architectures.py), copied layer for layer into PyTorch and Keras:

* ``seed``:   3 x [Conv2D(64, 3x3, valid) + ReLU + MaxPool 2x2], Flatten, Dense 64 + ReLU, Dense 32 + ReLU,
              Dense 10 + softmax
* ``lenet5``: Conv2D(6, 5x5, same) + ReLU + MaxPool 2x2, Conv2D(16, 5x5, valid) + ReLU + MaxPool 2x2, Flatten,
              Dense 120 + ReLU, Dense 84 + ReLU, Dense 10 + softmax
* ``mlp``:    Flatten, Dense 256 + ReLU, Dense 128 + ReLU, Dense 10 + softmax

All take 28x28x1 images and are trained with Adam(1e-3) on sparse categorical cross-entropy.
"""
from __future__ import annotations

import itertools
import json
import os
import sys
import time

MODELS = ("seed", "lenet5", "mlp")
MODEL_LABELS = {"seed": "seed CNN", "lenet5": "LeNet-5", "mlp": "MLP"}
MINICNN_BUILDERS = {"seed": "seed_cnn", "lenet5": "lenet5", "mlp": "mlp"}

# contender key -> (label, worker script, extra worker arguments)
CONTENDERS = {
    "minicnn": ("minicnn (fast engine, Numba kernels)", "minicnn_worker.py", ["--engine", "fast"]),
    "minicnn-numpy": ("minicnn (fast plan, NumPy twins)", "minicnn_worker.py", ["--engine", "twins"]),
    "minicnn-reference": ("minicnn (reference engine)", "minicnn_worker.py", ["--engine", "reference"]),
    "torch": ("PyTorch eager, NCHW", "torch_worker.py", ["--layout", "nchw"]),
    "torch-cl": ("PyTorch eager, channels_last", "torch_worker.py", ["--layout", "channels_last"]),
    "keras-jax": ("Keras 3 / JAX", "keras_worker.py", ["--backend", "jax"]),
    "keras-tf": ("Keras 3 / TensorFlow", "keras_worker.py", ["--backend", "tensorflow"]),
}
REFERENCE = "torch"  # ratios are taken against this contender, measured in the same rounds
GROUPS = {"minicnn": ("minicnn", "minicnn-numpy", "minicnn-reference"),
         "torch": ("torch", "torch-cl"), "pytorch": ("torch", "torch-cl"),
          "keras": ("keras-jax", "keras-tf"), "minicnn-numba": ("minicnn",), "torch-nchw": ("torch",)}

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


# ---------------------------------------------------------------- the same networks in PyTorch and Keras
def torch_model(name):
    """minicnn's architecture ``name`` in PyTorch (NCHW, outputs logits; predict applies softmax)."""
    from torch import nn

    if name == "seed":
        layers, channels = [], 1
        for _ in range(3):
            layers += [nn.Conv2d(channels, 64, 3), nn.ReLU(), nn.MaxPool2d(2)]
            channels = 64
        layers += [nn.Flatten(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10)]
    elif name == "lenet5":
        layers = [nn.Conv2d(1, 6, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
                  nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2),
                  nn.Flatten(), nn.Linear(16 * 5 * 5, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(),
                  nn.Linear(84, 10)]
    elif name == "mlp":
        layers = [nn.Flatten(), nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 128), nn.ReLU(), nn.Linear(128, 10)]
    else:
        raise ValueError(f"unknown model {name!r}")
    return nn.Sequential(*layers)


def keras_model(name):
    """minicnn's architecture ``name`` in Keras 3 (NHWC, ends in softmax), not compiled."""
    import keras
    from keras import layers

    if name == "seed":
        stack = []
        for _ in range(3):
            stack += [layers.Conv2D(64, 3, activation="relu"), layers.MaxPooling2D(2)]
        stack += [layers.Flatten(), layers.Dense(64, activation="relu"), layers.Dense(32, activation="relu"),
                  layers.Dense(10, activation="softmax")]
    elif name == "lenet5":
        stack = [layers.Conv2D(6, 5, padding="same", activation="relu"), layers.MaxPooling2D(2),
                 layers.Conv2D(16, 5, activation="relu"), layers.MaxPooling2D(2),
                 layers.Flatten(), layers.Dense(120, activation="relu"), layers.Dense(84, activation="relu"),
                 layers.Dense(10, activation="softmax")]
    elif name == "mlp":
        stack = [layers.Flatten(), layers.Dense(256, activation="relu"), layers.Dense(128, activation="relu"),
                 layers.Dense(10, activation="softmax")]
    else:
        raise ValueError(f"unknown model {name!r}")
    return keras.Sequential([keras.Input((28, 28, 1))] + stack, name=name)


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
        key = (kind, model, batch)
        if key not in callables:
            factory = backend.train_step if kind == "train" else backend.predictor
            callables[key] = factory(model, batch)
        return callables[key]

    def train(request):
        batch = int(request["batch"])
        step = cached("train", request["model"], batch)
        seconds, steps = timed_loop(step, float(request["budget"]), int(request["steps"]),
                                    int(request.get("min_steps", 1)))
        return {"seconds": seconds, "steps": steps, "value": steps * batch / seconds}

    def infer(request):
        batch = int(request["batch"])
        predict = cached("predict", request["model"], batch)
        seconds, steps = timed_loop(predict, float(request["budget"]), int(request["steps"]),
                                    int(request.get("min_steps", 1)))
        return {"seconds": seconds, "steps": steps, "value": steps * batch / seconds}

    def latency(request):
        predict = cached("predict", request["model"], 1)
        times = latency_loop(predict, float(request["budget"]), int(request["calls"]))
        times.sort()
        return {"calls": len(times), "value": times[len(times) // 2] * 1e3, "min_ms": times[0] * 1e3}

    def save(request):
        return {"path": str(backend.save(request["model"], request["path"]))}

    def hello(request):
        return backend.info()

    handlers = {"hello": hello, "train": train, "infer": infer, "latency": latency, "save": save}
    handlers.update(getattr(backend, "extra_handlers", dict)())
    return handlers
