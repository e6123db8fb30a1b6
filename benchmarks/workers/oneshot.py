"""Short-lived benchmark processes: each runs one measurement in a fresh interpreter and prints one JSON line.

    python oneshot.py fresh  CONTENDER MODEL MODEL_FILE [--train-step]
        import the library, load the saved model, predict one image; times each stage from the first line of
        this script (total_s = import + load + predict). Then predicts one image again: second_predict_s, and
        through_second_s from the first line (for minicnn with Numba kernels the first small predict of a
        process runs on the NumPy twins and the second loads Numba: its kernels are loaded from the JIT cache,
        or compiled when the cache is empty, in the second predict). --train-step (minicnn only) then times one
        training step too (all training kernels compiled or loaded from the JIT cache). The caller chooses
        NUMBA_CACHE_DIR (empty or warm).
    python oneshot.py memory CONTENDER MODEL BATCH STEPS
        build MODEL, train STEPS steps at BATCH, report the process's peak resident memory (ru_maxrss).
"""
import time

START = time.perf_counter()

import os  # noqa: E402
import sys  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.dirname(HERE))


def _protocol_out():
    """A private copy of stdout for the result line; everything printed by libraries goes to stderr."""
    out = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    return out


def _second(timings, mark):
    """Record the second one-image predict that just ended (it started at ``mark``); returns the time now."""
    now = time.perf_counter()
    timings["second_predict_s"] = now - mark
    timings["through_second_s"] = now - START
    return now


def fresh(contender, model_name, path, train_step=False):
    timings = {}
    mark = START
    one = None
    if contender.startswith("minicnn"):

        import numpy as np

        import minicnn

        timings["import_s"], mark = time.perf_counter() - mark, time.perf_counter()
        model = minicnn.load_model(path, engine={"minicnn-numpy": "twins",
                                                 "minicnn-reference": "reference"}.get(contender, "fast"))
        timings["load_s"], mark = time.perf_counter() - mark, time.perf_counter()
        one = np.random.default_rng(0).random((1, 28, 28, 1), dtype=np.float32)
        model.predict(one)
        timings["predict_s"], mark = time.perf_counter() - mark, time.perf_counter()
        timings["total_s"] = mark - START
        model.predict(one)
        mark = _second(timings, mark)
        if train_step:
            if model.optimizer is None:
                model.compile(optimizer=minicnn.optimizers.Adam(1e-3))
            x = np.random.default_rng(1).random((32, 28, 28, 1), dtype=np.float32)
            y = np.arange(32, dtype=np.int64) % 10
            model.train_step(x, y)
            timings["first_train_step_s"] = time.perf_counter() - mark
    elif contender in ("torch", "torch-cl"):
        import common
        import numpy as np
        import torch

        torch.set_num_threads(common.THREADS)
        timings["import_s"], mark = time.perf_counter() - mark, time.perf_counter()
        model = common.torch_model(model_name)
        model.load_state_dict(torch.load(path, weights_only=True))
        model.eval()
        layout = torch.channels_last if contender == "torch-cl" else torch.contiguous_format
        model = model.to(memory_format=layout)
        timings["load_s"], mark = time.perf_counter() - mark, time.perf_counter()
        one = np.random.default_rng(0).random((1, 28, 28, 1), dtype=np.float32)
        with torch.inference_mode():
            x = torch.from_numpy(one).permute(0, 3, 1, 2).contiguous(memory_format=layout)
            torch.softmax(model(x), dim=1).numpy()
        timings["predict_s"], mark = time.perf_counter() - mark, time.perf_counter()
        timings["total_s"] = mark - START
        with torch.inference_mode():
            x = torch.from_numpy(one).permute(0, 3, 1, 2).contiguous(memory_format=layout)
            torch.softmax(model(x), dim=1).numpy()
        _second(timings, mark)
    elif contender in ("keras-jax", "keras-tf"):
        from keras_worker import configure_backend

        configure_backend("jax" if contender == "keras-jax" else "tensorflow")
        import keras
        import numpy as np

        timings["import_s"], mark = time.perf_counter() - mark, time.perf_counter()
        model = keras.saving.load_model(path)
        timings["load_s"], mark = time.perf_counter() - mark, time.perf_counter()
        one = np.random.default_rng(0).random((1, 28, 28, 1), dtype=np.float32)
        model.predict_on_batch(one)
        timings["predict_s"], mark = time.perf_counter() - mark, time.perf_counter()
        timings["total_s"] = mark - START
        model.predict_on_batch(one)
        _second(timings, mark)
    else:
        raise SystemExit(f"unknown contender {contender!r}")
    return timings


def memory(contender, model, batch, steps):
    import common

    if contender.startswith("minicnn"):
        from minicnn_worker import MinicnnBackend

        backend = MinicnnBackend({"minicnn-numpy": "twins", "minicnn-reference": "reference"}.get(contender, "fast"))
    elif contender.startswith("torch"):
        from torch_worker import TorchBackend

        backend = TorchBackend("channels_last" if contender == "torch-cl" else "nchw")
    elif contender.startswith("keras"):
        from keras_worker import KerasBackend

        backend = KerasBackend("jax" if contender == "keras-jax" else "tensorflow")
    else:
        raise SystemExit(f"unknown contender {contender!r}")
    baseline = common.current_rss_mb()
    step = backend.train_step(model, batch)
    for _ in range(steps):
        step()
    return {"baseline_rss_mb": baseline, "peak_rss_mb": common.peak_rss_mb(), "steps": steps, "batch": batch}


def main():
    import json

    out = _protocol_out()
    mode, contender = sys.argv[1], sys.argv[2]
    if mode == "fresh":
        result = fresh(contender, sys.argv[3], sys.argv[4], train_step="--train-step" in sys.argv[5:])
    elif mode == "memory":
        result = memory(contender, sys.argv[3], int(sys.argv[4]), int(sys.argv[5]))
    else:
        raise SystemExit(f"unknown mode {mode!r}")
    out.write(json.dumps(result) + "\n")
    out.flush()


if __name__ == "__main__":
    main()
