"""Tiered start: the first small prediction of a process runs on the NumPy twins, without loading Numba.

Numba is expensive to START (importing it and loading the compiled kernels costs ~0.3 s), not to run. A
command-line tool that predicts one image and exits is better off without it, so the fast engine starts in
tiers, as a JIT runtime does:

1. ``import minicnn`` does not import Numba (minicnn/kernels/jit.py: the kernels are lazy).
2. The FIRST prediction of the process, if it has at most ``COLD_START_MAX_BATCH`` images and Numba is not
   loaded yet, runs the fast plan with the NumPy twins on the calling thread (``claim_cold_start``).
3. Everything else loads Numba at its first kernel call.

``Sequential.warm_up()`` pays the cost at start-up instead (for a server); ``MINICNN_COLD_START=0`` turns step 2
off. Measurements: docs/performance.md ("Start-up"). A learner can skip this file: it changes no number.
"""
from __future__ import annotations

import os
import threading

from minicnn.kernels import jit

COLD_START_MAX_BATCH = 16

_lock = threading.Lock()
_spent = False  # the first prediction of the process has started


def cold_start_enabled():
    """``MINICNN_COLD_START=0`` turns the cold start off (default: on)."""
    value = os.environ.get("MINICNN_COLD_START", "1").strip().lower()
    if value not in ("0", "1", "false", "true", "no", "yes", "off", "on", ""):
        raise ValueError(f"MINICNN_COLD_START={value!r} is not understood: use 1 (the default: a first small "
                         "prediction runs on the NumPy twins, without loading Numba) or 0 (it loads Numba)")
    return value not in ("0", "false", "no", "off")


def claim_cold_start(images):
    """True if this call is the first prediction of the process, small, and Numba is not loaded yet: the
    caller then runs it on the NumPy twins, on its own thread. Every later call gets False."""
    global _spent
    if _spent:
        return False
    with _lock:
        first, _spent = not _spent, True
    return first and images <= COLD_START_MAX_BATCH and cold_start_enabled() and not jit.numba_loaded()


def load_numba_and_kernels():
    """Import Numba and create every kernel's dispatcher now."""
    jit.load_numba()
    jit.all_kernels()
    jit.load_kernels()
