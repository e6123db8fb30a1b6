"""Is Numba's disk cache warm for minicnn's kernels? (train.py's "compiling kernels, first run only" line)

Numba compiles a kernel the first time it runs and, as minicnn's kernels say ``cache=True``, keeps the machine
code on disk: an index file (``.nbi``) and data files (``.nbc``) in ``__pycache__`` beside the kernel's source
file, or under ``$NUMBA_CACHE_DIR``, or in ``~/.cache/numba`` when that folder is not writable. Later processes
load it in a fraction of a second instead of compiling again (several seconds per model). Numba ignores an
index written by another Numba version or for an older version of the source file (it compiles again then).

``uncached_kernels()`` asks Numba's own cache classes, for each kernel, whether such a valid index exists. It
looks, it compiles nothing; it costs the import of Numba (which training pays anyway) and ~1 ms per kernel.
``on_first_compile(callback)`` tells the moment Numba really starts compiling one.
"""
from __future__ import annotations

import contextlib
import importlib
import pkgutil
import time
import types


def all_kernels():
    """Every Numba kernel minicnn declares (the LazyKernel objects of minicnn/kernels/*.py)."""
    import minicnn.kernels
    from minicnn.kernels import jit

    for module in pkgutil.iter_modules(minicnn.kernels.__path__):
        importlib.import_module(f"minicnn.kernels.{module.name}")
    return [kernel for kernel in getattr(jit, "_kernels", []) if getattr(kernel, "options", {}).get("cache")]


def uncached_kernels():
    """The names of minicnn's kernels that have no valid compiled code in Numba's disk cache (an empty list
    when every kernel is cached or ``NUMBA_DISABLE_JIT=1``), or None if Numba's cache cannot be inspected."""
    try:
        kernels = all_kernels()
        from minicnn.kernels.jit import load_numba

        if load_numba().config.DISABLE_JIT:
            return []
        from numba.core.caching import FunctionCache

        return [kernel.__qualname__ for kernel in kernels
                if not FunctionCache(kernel.py_func)._cache_file._load_index()]
    except Exception:  # another Numba's (or minicnn's) internals, an unreadable cache folder: cannot tell
        return None


@contextlib.contextmanager
def on_first_compile(callback):
    """Within the block, call ``callback()`` once, when Numba starts COMPILING a kernel (loading one from the
    disk cache does not count). Yields an object whose ``started`` is the perf_counter time of that moment, or
    None if nothing was compiled. Uses Numba's event API ("numba:compile" events)."""
    from minicnn.kernels.jit import load_numba

    load_numba()
    try:
        from numba.core import event
    except ImportError:  # a Numba without the event API: nothing to tell
        yield types.SimpleNamespace(started=None)
        return

    class FirstCompile(event.Listener):
        started = None

        def on_start(self, data):
            if self.started is None:
                self.started = time.perf_counter()
                callback()

        def on_end(self, data):
            pass

    listener = FirstCompile()
    with event.install_listener("numba:compile", listener):
        yield listener
