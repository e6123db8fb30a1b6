"""What ``fit`` returns, how it reports progress (Keras habits), and how it hears Ctrl+C."""
from __future__ import annotations

import signal
import sys
import threading
import time


class History:
    """``history.history["loss"]`` etc.: one value per finished epoch, as in Keras.

    ``interrupted`` is True when training was stopped with Ctrl+C (the weights are those of the last finished
    step); ``steps_done`` then tells how far the unfinished epoch got: (steps done, steps per epoch), or None
    if it stopped between epochs."""

    def __init__(self):
        self.history = {}
        self.epoch = []
        self.interrupted = False
        self.steps_done = None

    def record(self, epoch, logs):
        self.epoch.append(epoch)
        for key, value in logs.items():
            self.history.setdefault(key, []).append(value)

    def __repr__(self):
        return f"History(epochs={len(self.epoch)}, metrics={list(self.history)}, interrupted={self.interrupted})"


def format_logs(logs):
    return " - ".join(f"{key}: {value:.4f}" for key, value in logs.items())


def _is_terminal(stream):
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # no isatty, or closed
        return False


class EpochProgress:
    """Progress on stderr (results are for stdout): verbose=1 draws a bar per epoch on a terminal and prints
    one line per epoch otherwise (a log file then gets no bar updates); verbose=2 always prints the line;
    verbose=0 prints nothing."""

    def __init__(self, epoch, epochs, steps, verbose):
        self.started = time.perf_counter()
        self.bar = None
        self.steps = steps
        self.title = f"Epoch {epoch + 1}/{epochs}"
        self.verbose = 2 if verbose == 1 and not _is_terminal(sys.stderr) else verbose
        if self.verbose == 1:
            from tqdm import tqdm  # (imported here: it costs ~40 ms, a tenth of a fresh process's first predict)

            self.bar = tqdm(total=steps, desc=self.title, unit="batch", file=sys.stderr, leave=True,
                            dynamic_ncols=True, mininterval=0.25)

    def step(self, logs):
        if self.bar is not None:
            self.bar.set_postfix_str(format_logs(logs), refresh=False)
            self.bar.update(1)

    def close(self, logs, steps_done=None):
        """End the epoch's bar or print its line; ``steps_done`` (fewer than all) marks an interrupted epoch (one
        stopped before its first step leaves no trace)."""
        seconds = time.perf_counter() - self.started
        if self.bar is not None:
            self.bar.leave = steps_done != 0
            self.bar.set_postfix_str(format_logs(logs), refresh=True)
            self.bar.close()
        elif self.verbose == 2 and steps_done != 0:
            stopped = f" - stopped after step {steps_done}/{self.steps}" if steps_done is not None else ""
            print(f"{self.title}{stopped} - {seconds:.1f}s - {format_logs(logs)}", file=sys.stderr, flush=True)
        return seconds


class CtrlC:
    """Hears Ctrl+C (SIGINT) without interrupting anything: each press only adds one to ``presses``, and the
    code looks at it where stopping is safe (``fit``: between two training steps). A KeyboardInterrupt raised
    at an arbitrary point could land inside a Numba kernel (``SystemError: CPUDispatcher(...) returned a
    result with an exception set``) or in the middle of saving a file.

        ctrl_c = CtrlC().start()        # in the main thread; elsewhere, or if SIGINT is ignored, it does nothing
        try:
            ...                         # if ctrl_c.presses: stop cleanly
        finally:
            ctrl_c.stop()               # the previous handler is back

    If a CtrlC is already listening (train.py starts one around ``fit``), ``start`` returns that one, so presses
    made before, during and after ``fit`` are all counted in one place; it stops listening at the last ``stop``.
    """

    def __init__(self):
        self.presses = 0
        self._previous = None
        self._starts = 0  # start() calls not yet matched by stop() while this CtrlC is the SIGINT handler

    def __call__(self, signum, frame):
        self.presses += 1

    def start(self):
        if threading.current_thread() is not threading.main_thread():
            return self
        current = signal.getsignal(signal.SIGINT)
        if current is signal.SIG_IGN:  # the parent process wants Ctrl+C ignored (nohup, a background job)
            return self
        if isinstance(current, CtrlC) and current._starts:
            current._starts += 1
            return current
        self._previous = signal.signal(signal.SIGINT, self)
        self._starts = 1
        return self

    def stop(self):
        if self._starts:
            self._starts -= 1
            if not self._starts:
                signal.signal(signal.SIGINT, signal.default_int_handler if self._previous is None else self._previous)
