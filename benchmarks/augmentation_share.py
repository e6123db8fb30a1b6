"""What share of a training step the augmentation layers take (seed CNN, fast engine, MNIST-sized images).

    python benchmarks/augmentation_share.py                # batch 32, 40 rounds of 10 steps
    python benchmarks/augmentation_share.py --batch 128

Each round times, in the process's CPU time (time.process_time, all threads: meaningful on a busy machine, where
wall-clock times are not), 10 calls of the engine's leading augmentation (the draw and the warp, what a step runs
first) and 10 whole training steps (which include it); the share is their ratio, the median over the rounds.
``--wall`` uses wall-clock time instead (on an idle machine).
"""
from __future__ import annotations

import argparse
import time

import numpy as np

import minicnn
from minicnn.architectures import with_augmentation
from minicnn.layers import RandomRotation, RandomTranslation, RandomZoom

AUGMENTATIONS = {"rotation ±10°": lambda: [RandomRotation(10 / 360)],
                 "rotation + shift 0.1 + zoom 0.1": lambda: [RandomRotation(10 / 360), RandomTranslation(0.1, 0.1),
                                                             RandomZoom(0.1)]}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=40)
    parser.add_argument("--wall", action="store_true", help="wall-clock time instead of CPU time")
    arguments = parser.parse_args()
    clock = time.perf_counter if arguments.wall else time.process_time
    rng = np.random.default_rng(0)
    x = rng.random((arguments.batch, 28, 28, 1), dtype=np.float32)
    y = rng.integers(0, 10, arguments.batch)
    for name, layers in AUGMENTATIONS.items():
        model = with_augmentation(minicnn.seed_cnn(), layers())
        model.compile(optimizer=minicnn.optimizers.Adam(1e-3))
        for _ in range(5):
            model.train_step(x, y)
        shares, steps, warps = [], [], []
        for _ in range(arguments.rounds):
            warp = step = 0.0
            for _ in range(10):
                start = clock()
                model._engine.augment(x)
                warp += clock() - start
                start = clock()
                model.train_step(x, y)
                step += clock() - start
            shares.append(warp / step)
            steps.append(step / 10)
            warps.append(warp / 10)
        print(f"{name:32s} batch {arguments.batch}: {np.median(shares) * 100:4.1f}% of a step "
              f"(quartiles {np.percentile(shares, 25) * 100:.1f}-{np.percentile(shares, 75) * 100:.1f}%); "
              f"step {np.median(steps) * 1e3:.2f} ms, augmentation {np.median(warps) * 1e3:.2f} ms "
              f"({'wall' if arguments.wall else 'CPU'} time)")


if __name__ == "__main__":
    main()
