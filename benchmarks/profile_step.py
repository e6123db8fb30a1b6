"""Where one training step of minicnn's fast engine spends its time, step by step (minicnn only, no other framework).

    python benchmarks/profile_step.py                 # seed CNN, 64 images on one thread (half of batch 128)
    python benchmarks/profile_step.py --batch 16 --model default

Times are the thread's CPU time (time.thread_time), the minimum over the repeats: that stays meaningful on a
busy machine, where wall-clock times are not. BLAS is held to one thread, as during a real step.
"""
from __future__ import annotations

import argparse
import time

import numpy as np

import minicnn
from minicnn.fast.engine import NUMBA_KERNELS
from minicnn.fast.parallel import ONE_BLAS_THREAD, Workspace
from minicnn.fast.plan import build_steps
from minicnn.losses import softmax_cross_entropy


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="seed", choices=sorted(minicnn.ARCHITECTURES))
    parser.add_argument("--batch", type=int, default=64, help="images one thread takes through the network")
    parser.add_argument("--repeats", type=int, default=30)
    arguments = parser.parse_args()

    model = minicnn.ARCHITECTURES[arguments.model]().compile("adam")
    rng, workspace, kernels = np.random.default_rng(0), Workspace(), NUMBA_KERNELS
    x = rng.random((arguments.batch, *model.input_shape), dtype=np.float32)
    y = rng.integers(0, model.num_classes, arguments.batch)
    grads = [[p.grad for p in layer.parameters()] for layer in model.layers]
    times = {}

    def timed(name, function, *args):
        start = time.thread_time()
        result = function(*args)
        times.setdefault(name, []).append(time.thread_time() - start)
        return result

    steps = build_steps(model.layers)[:-1]  # (the final Softmax is part of the loss)
    with ONE_BLAS_THREAD:
        for _ in range(arguments.repeats + 3):
            h, caches = x, []
            for number, step in enumerate(steps):
                h, cache = timed(f"forward  {number} {describe(step, len(x))}", step.forward, h, kernels, workspace,
                                 True)
                caches.append(cache)
            _, dh = timed("loss (softmax + cross-entropy)", softmax_cross_entropy, h, y, 1.0 / len(x))
            for number in range(len(steps) - 1, -1, -1):
                step = steps[number]
                dh = timed(f"backward {number} {describe(step, len(x))}", step.backward, dh, caches[number],
                           grads[step.index], kernels, workspace, number > 0)
            timed("optimizer (Adam, one kernel)", model.optimizer.apply, model.flat_params, model.flat_grads, kernels)
    total = sum(min(values[3:]) for values in times.values())
    print(f"{arguments.model}: {arguments.batch} images on one thread, CPU ms per part (min of {arguments.repeats})")
    for name, values in times.items():
        best = min(values[3:]) * 1e3
        print(f"  {name:55s} {best:8.3f}  {100 * best / (total * 1e3):5.1f}%")
    print(f"  {'total':55s} {total * 1e3:8.3f}   -> {arguments.batch / total:,.0f} images/s per core")


def describe(step, batch):
    """The step's layers and the algorithm this batch takes (minicnn/fast/plan.py)."""
    return "+".join(type(layer).__name__ for layer in step.layers) + f" ({step.describe(batch)[0]})"


if __name__ == "__main__":
    main()
