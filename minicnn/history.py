"""What ``fit`` returns and how it reports progress (Keras habits)."""
from __future__ import annotations

import sys
import time


class History:
    """``history.history["loss"]`` etc.: one value per finished epoch, as in Keras.

    ``interrupted`` is True when training was stopped with Ctrl+C (the weights are those of the last finished
    step)."""

    def __init__(self):
        self.history = {}
        self.epoch = []
        self.interrupted = False

    def record(self, epoch, logs):
        self.epoch.append(epoch)
        for key, value in logs.items():
            self.history.setdefault(key, []).append(value)

    def __repr__(self):
        return f"History(epochs={len(self.epoch)}, metrics={list(self.history)}, interrupted={self.interrupted})"


def format_logs(logs):
    return " - ".join(f"{key}: {value:.4f}" for key, value in logs.items())


class EpochProgress:
    """One progress bar per epoch (verbose=1), one line per epoch (verbose=2), or nothing (verbose=0)."""

    def __init__(self, epoch, epochs, steps, verbose):
        self.verbose = verbose
        self.started = time.perf_counter()
        self.bar = None
        self.title = f"Epoch {epoch + 1}/{epochs}"
        if verbose == 1:
            from tqdm import tqdm  # (imported here: it costs ~40 ms, a tenth of a fresh process's first predict)

            self.bar = tqdm(total=steps, desc=self.title, unit="batch", file=sys.stdout, leave=True,
                            dynamic_ncols=True, mininterval=0.25)

    def step(self, logs):
        if self.bar is not None:
            self.bar.set_postfix_str(format_logs(logs), refresh=False)
            self.bar.update(1)

    def close(self, logs):
        seconds = time.perf_counter() - self.started
        if self.bar is not None:
            self.bar.set_postfix_str(format_logs(logs), refresh=True)
            self.bar.close()
        elif self.verbose == 2:
            print(f"{self.title} - {seconds:.1f}s - {format_logs(logs)}", flush=True)
        return seconds
