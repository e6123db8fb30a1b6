"""Which implementation of the hot loops runs: the Numba kernels or their plain NumPy twins.

Every hot loop in ``minicnn.kernels`` exists twice, side by side in one module: a NumPy version a learner can
read, and a Numba-compiled version that is fast. Both compute the same thing (the tests check it). This module
holds the one switch that decides which runs:

* the environment variable ``MINICNN_KERNELS=numpy`` or ``MINICNN_KERNELS=numba`` (default ``numba``), read
  once at import time;
* ``minicnn.set_kernels("numpy")`` at run time;
* ``with minicnn.use_kernels("numpy"): ...`` for a block of code.

Setting ``NUMBA_DISABLE_JIT=1`` is a third way to learn: the Numba kernels then run as plain Python loops,
which you can step through in a debugger (slowly).

Tiered start: why the first small prediction of a process runs on the NumPy twins
-------------------------------------------------------------------------------
Numba is expensive to START, not to run. A fresh process that imports minicnn, loads a model and predicts one
image would spend ~0.3 s on Numba (importing it, ~0.17 s; initialising its compiler target and loading the
compiled kernels from the disk cache on the first call, ~0.12 s) for a prediction that takes a fraction of a
millisecond once Numba is there, and ~5 ms on the NumPy twins. A command-line tool or a demo that predicts
one image and exits is better off without Numba. So minicnn starts in tiers, as a JIT runtime does (an
interpreter first, the compiler for code that turns out to run often):

1. ``import minicnn`` does not import Numba: the kernels are lazy (``minicnn/kernels/jit.py``) and import it
   on their first call.
2. ``cold_start(batch_size)`` wraps every prediction (``Engine.outputs``). The FIRST prediction of the process,
   if it is small (at most ``COLD_START_MAX_BATCH`` = 16 images) and Numba is not loaded yet, runs on the
   NumPy twins, on the calling thread only, and never imports Numba. It gives the same numbers as the Numba
   kernels to float rounding (the tests check it).
3. Everything else loads Numba on its first kernel call: the second prediction (it pays the ~0.3 s the first
   one skipped; every later call is fast), a first prediction of more than 16 images, any training step.

What it costs: a process that predicts one image and exits saves ~0.3 s; a process that predicts many single
images pays the Numba load at its SECOND prediction instead of its first. A server that would rather pay at
start-up calls ``minicnn.warm_up(model)`` before serving. ``MINICNN_COLD_START=0`` turns step 2 off (the first
prediction then loads Numba like every other); ``MINICNN_KERNELS=numpy`` never loads Numba at all.
"""
from __future__ import annotations

import contextlib
import os
import threading

from minicnn.kernels import jit as _jit

KERNEL_CHOICES = ("numba", "numpy")


def _from_environment() -> str:
    choice = os.environ.get("MINICNN_KERNELS", "numba").strip().lower() or "numba"
    if choice not in KERNEL_CHOICES:
        raise ValueError(
            f"MINICNN_KERNELS={choice!r} is not understood: use 'numba' (fast, the default) or 'numpy' "
            "(the readable twins)."
        )
    return choice


_current = _from_environment()


def current_kernels() -> str:
    """The implementation in use: ``"numba"`` or ``"numpy"``."""
    return _current


def use_numba() -> bool:
    return _current == "numba"


def set_kernels(choice: str) -> None:
    """Run every hot loop with ``"numba"`` kernels or their ``"numpy"`` twins from now on."""
    global _current
    if choice not in KERNEL_CHOICES:
        raise ValueError(f"kernels must be one of {KERNEL_CHOICES}, got {choice!r}")
    _current = choice


@contextlib.contextmanager
def use_kernels(choice: str):
    """Context manager: ``with use_kernels("numpy"): model.fit(...)`` runs the block on the NumPy twins."""
    previous = _current
    set_kernels(choice)
    try:
        yield
    finally:
        set_kernels(previous)


def pick(numpy_version, numba_version):
    """Return the version of a kernel that the switch selects (used by the dispatchers in minicnn.kernels).

    The Numba version is a lazy kernel (``minicnn/kernels/jit.py``): once it has been loaded, ``pick`` returns
    Numba's own dispatcher, so the engine's hundreds of kernel calls per step pay nothing for the laziness.
    Inside a cold start (below) the calling thread gets the NumPy twin."""
    if _current == "numba" and not (_threads_in_cold_start and getattr(_cold_start_here, "active", False)):
        dispatcher = getattr(numba_version, "dispatcher", None)
        return numba_version if dispatcher is None else dispatcher
    return numpy_version


# ---------------------------------------------------------------- tiered start (see the module docstring)
COLD_START_MAX_BATCH = 16  # a first prediction of at most this many images runs on the NumPy twins

_cold_start_here = threading.local()  # .active: this thread is inside a cold start
_threads_in_cold_start = 0            # how many threads are (so pick looks at the thread-local only then)
_cold_start_lock = threading.Lock()
_cold_start_spent = False             # the first prediction of the process has started


def cold_start_enabled() -> bool:
    """``MINICNN_COLD_START=0`` turns the cold start off (default: on)."""
    value = os.environ.get("MINICNN_COLD_START", "1").strip().lower()
    if value not in ("0", "1", "false", "true", "no", "yes", "off", "on", ""):
        raise ValueError(f"MINICNN_COLD_START={value!r} is not understood: use 1 (the default: a first small "
                         "prediction runs on the NumPy twins, without loading Numba) or 0 (it loads Numba)")
    return value not in ("0", "false", "no", "off")


class _ColdStart:
    """The calling thread runs on the NumPy twins until the block ends."""

    def __enter__(self):
        global _threads_in_cold_start
        with _cold_start_lock:
            _threads_in_cold_start += 1
        _cold_start_here.active = True
        return True

    def __exit__(self, *exc):
        global _threads_in_cold_start
        _cold_start_here.active = False
        with _cold_start_lock:
            _threads_in_cold_start -= 1
        return False


_NOT_COLD = contextlib.nullcontext(False)


def cold_start(batch_size):
    """Context manager around a prediction: ``with cold_start(len(x)) as cold: ...``.

    The block runs on the NumPy twins (on the calling thread only; ``cold`` is True) if and only if this is the
    first prediction of the process, the kernels are ``"numba"``, Numba is not loaded yet, ``batch_size`` is
    at most ``COLD_START_MAX_BATCH`` and ``MINICNN_COLD_START`` is not 0. Otherwise it does nothing (``cold``
    is False) and the kernels load Numba on their first call, as usual. Work the block hands to OTHER threads
    runs on whatever ``pick`` selects there (so split a cold prediction over no threads, or Numba loads).
    """
    global _cold_start_spent
    if _cold_start_spent:  # the fast path of every prediction but the first
        return _NOT_COLD
    with _cold_start_lock:
        first, _cold_start_spent = not _cold_start_spent, True
    if (first and _current == "numba" and batch_size <= COLD_START_MAX_BATCH and cold_start_enabled()
            and not _jit.numba_loaded()):
        return _ColdStart()
    return _NOT_COLD


def warm_up(model=None):
    """Load Numba and create every kernel now, instead of at the first kernel call (see the tiered start above).

    For a server that wants its start-up, not its second request, to pay the ~0.3 s. With a ``model``, also
    run two predictions on zeros (1 and 8 images, the two paths a prediction takes: see minicnn/execution.py),
    so the kernels the model's predictions use are loaded from Numba's disk cache (or compiled, the first run
    ever) now too. Does nothing under ``MINICNN_KERNELS=numpy`` / ``set_kernels("numpy")``.
    """
    if _current != "numba":
        return
    _jit.load_numba()
    _jit.load_kernels()
    if model is not None:
        import numpy as np

        if not model.built:
            model.build()
        for images in (1, 8):
            model.predict(np.zeros((images, *model.input_shape), dtype=model.dtype))
