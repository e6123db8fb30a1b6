"""Benchmark worker for Keras 3 on one backend (fixed per process, hence one worker per backend).

    python benchmarks/workers/keras_worker.py --backend jax|tensorflow

Training: ``model.train_on_batch(x, y)`` after ``compile(optimizer=Adam(1e-3),
loss="sparse_categorical_crossentropy")`` with Keras's defaults (``jit_compile="auto"``: XLA on JAX, whatever
Keras decides on TensorFlow; the resolved value is reported). On this kind of machine train_on_batch and fit() ran
at the same speed; train_on_batch is the per-step equivalent of minicnn's train_step. Prediction:
``model.predict_on_batch(x)``, the lightest of Keras's predict paths (``model.predict`` costs milliseconds more
per call). Threads: TensorFlow intra-op 2, inter-op 2; JAX/XLA uses its defaults (one thread per core).
"""
from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import common  # noqa: E402


def configure_backend(backend):
    """Select the Keras backend and its threads; must run before keras (or tensorflow/jax) is imported."""
    os.environ["KERAS_BACKEND"] = backend
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if backend == "tensorflow":
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(common.THREADS)
        tf.config.threading.set_inter_op_parallelism_threads(common.THREADS)


def keras_thread_info(backend):
    if backend == "tensorflow":
        import tensorflow as tf

        return {"tf intra_op_parallelism_threads": tf.config.threading.get_intra_op_parallelism_threads(),
                "tf inter_op_parallelism_threads": tf.config.threading.get_inter_op_parallelism_threads()}
    if backend == "jax":
        import jax

        return {"jax devices": [str(device) for device in jax.devices()],
                "XLA_FLAGS": os.environ.get("XLA_FLAGS", "(unset: XLA CPU default threads)")}
    return {}


def keras_versions(backend):
    import keras

    versions = {"keras": keras.__version__}
    if backend == "tensorflow":
        import tensorflow as tf

        versions["tensorflow"] = tf.__version__
    elif backend == "jax":
        import jax
        import jaxlib

        versions["jax"] = jax.__version__
        versions["jaxlib"] = getattr(jaxlib, "__version__", "?")
    return versions


class KerasBackend:
    def __init__(self, backend):
        configure_backend(backend)
        import keras

        self.keras = keras
        self.backend = backend
        keras.utils.set_random_seed(common.SEED)
        self.trained = {}
        self.jit_compile = None

    def build(self, model):
        network = common.keras_model(model)
        network.compile(optimizer=self.keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy")
        self.jit_compile = getattr(network, "jit_compile", None)
        return network

    def info(self):
        import numpy as np

        if self.jit_compile is None:
            self.build("mlp")
        return {"versions": {**keras_versions(self.backend), "numpy": np.__version__},
                "keras_backend": self.keras.backend.backend(), "threads": keras_thread_info(self.backend),
                "jit_compile": repr(self.jit_compile), "blas": common.blas_info(), "pid": os.getpid()}

    def train_step(self, model, batch):
        network = self.build(model)
        self.trained.setdefault(model, network)
        # train_on_batch returns the loss as a Python float: it waits for the step to finish
        return common.cycling_step(common.random_batches(batch), network.train_on_batch)

    def predictor(self, model, batch):
        network = self.trained.get(model) or self.build(model)
        x = common.random_batches(batch, count=1)[0][0]
        return lambda: network.predict_on_batch(x)  # returns a NumPy array: synchronous

    def save(self, model, path):
        network = self.trained.get(model) or self.build(model)
        network.save(path)
        return path


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--backend", choices=("jax", "tensorflow"), required=True)
    args = parser.parse_args()
    common.serve(lambda: common.make_handlers(KerasBackend(args.backend)))


if __name__ == "__main__":
    main()
