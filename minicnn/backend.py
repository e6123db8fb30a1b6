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
"""
from __future__ import annotations

import contextlib
import os

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
    """Return the version of a kernel that the switch selects (used by the dispatchers in minicnn.kernels)."""
    return numba_version if _current == "numba" else numpy_version
