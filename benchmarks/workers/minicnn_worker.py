"""Benchmark worker for minicnn: a long-lived process that times what run.py asks, one request at a time.

    python benchmarks/workers/minicnn_worker.py --engine fast|twins|reference

Speaks JSON lines (see common.serve). Uses only minicnn's public API: seed_cnn()/lenet5()/mlp(), compile,
train_step, predict, save and the engine switch (MINICNN_ENGINE); the ladder request also calls Conv2D layers'
forward().
"""
from __future__ import annotations

import argparse
import inspect
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import common  # noqa: E402


def minicnn_thread_setting(minicnn):
    """Whatever thread setting minicnn offers (it may not have one): module functions/attributes and keyword
    arguments of Sequential's constructor/compile/fit whose name mentions threads."""
    found = {}
    for owner_name, owner in (("minicnn", minicnn),):
        if owner is None:
            continue
        for name in dir(owner):
            if "thread" not in name.lower() or name.startswith("_"):
                continue
            value = getattr(owner, name)
            if inspect.ismodule(value):
                continue
            if callable(value):
                try:
                    parameters = inspect.signature(value).parameters.values()
                    if name.lower().startswith(("get", "thread", "num")) and not any(
                            p.default is p.empty and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
                            for p in parameters):
                        found[f"{owner_name}.{name}()"] = repr(value())
                    else:
                        found[f"{owner_name}.{name}"] = "callable"
                except (TypeError, ValueError):
                    found[f"{owner_name}.{name}"] = "callable"
            else:
                found[f"{owner_name}.{name}"] = repr(value)
    for method in ("__init__", "compile", "fit", "train_step", "predict"):
        function = getattr(minicnn.Sequential, method, None)
        try:
            parameters = inspect.signature(function).parameters
        except (TypeError, ValueError):
            continue
        for name, parameter in parameters.items():
            if "thread" in name.lower():
                default = "required" if parameter.default is parameter.empty else repr(parameter.default)
                found[f"Sequential.{method}({name}=)"] = f"default {default}"
    try:  # what a model built with the defaults actually uses
        model = minicnn.mlp()
        for name in ("threads", "engine"):
            if hasattr(model, name):
                found[f"model.{name}"] = repr(getattr(model, name))
        from minicnn.fast.parallel import resolve_threads as resolve
        if hasattr(model, "threads"):
            found["effective threads"] = repr(resolve(model.threads))
    except Exception as error:  # reporting only: never fail the benchmark over it
        found["error"] = repr(error)
    return found


class MinicnnBackend:
    def __init__(self, engine):
        os.environ["MINICNN_ENGINE"] = engine  # every model this process builds runs on that engine
        import numpy as np

        import minicnn

        self.np = np
        self.minicnn = minicnn
        self.engine = engine
        self.trained = {}

    def build(self, model):
        network = getattr(self.minicnn, common.MINICNN_BUILDERS[model])()
        network.compile(optimizer=self.minicnn.optimizers.Adam(1e-3))
        return network

    def info(self):
        import numba
        import numpy as np

        minicnn = self.minicnn
        return {"versions": {"minicnn": getattr(minicnn, "__version__", "?"), "numpy": np.__version__,
                             "numba": numba.__version__},
                "engine": self.engine,
                "threads": minicnn_thread_setting(minicnn),
                "numba_threading_layer_setting": numba.config.THREADING_LAYER,
                "numba_num_threads": numba.config.NUMBA_NUM_THREADS,
                "blas": common.blas_info(), "pid": os.getpid()}

    def train_step(self, model, batch):
        network = self.build(model)
        self.trained.setdefault(model, network)
        return common.cycling_step(common.random_batches(batch), network.train_step)

    def predictor(self, model, batch):
        network = self.trained.get(model) or self.build(model)
        x = common.random_batches(batch, count=1)[0][0]
        return lambda: network.predict(x, batch_size=batch)

    def save(self, model, path):
        network = self.trained.get(model) or self.build(model)
        network.save(path)
        return path

    def extra_handlers(self):
        def ladder(request):
            import naive

            return naive.ladder(self.minicnn, batch=int(request.get("batch", 8)),
                                budget=float(request.get("budget", 0.5)),
                                naive_repeats=int(request.get("naive_repeats", 1)))

        def gemm(request):
            """The machine's float32 GEMM ceiling: NumPy's sgemm (its BLAS, default threads) of two square
            matrices, the best rate of the calls made within the budget (after one untimed call)."""
            np = self.np
            size = int(request.get("size", 1024))
            rng = np.random.default_rng(0)
            a, b = (rng.random((size, size), dtype=np.float32) for _ in range(2))
            out = np.empty((size, size), np.float32)
            np.matmul(a, b, out=out)
            times = common.latency_loop(lambda: np.matmul(a, b, out=out), float(request.get("budget", 0.5)), 1000)
            flops = 2.0 * size ** 3
            return {"size": size, "calls": len(times), "gflops": flops / min(times) / 1e9,
                    "median_gflops": flops / sorted(times)[len(times) // 2] / 1e9}

        return {"ladder": ladder, "gemm": gemm}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--engine", choices=("fast", "twins", "reference"), default="fast")
    args = parser.parse_args()
    common.serve(lambda: common.make_handlers(MinicnnBackend(args.engine)))


if __name__ == "__main__":
    main()
