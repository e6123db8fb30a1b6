"""``@njit(..., twin=numpy_function)``: declare a Numba kernel, its NumPy twin, and load Numba only when needed.

Every kernel of ``minicnn.kernels`` is declared like this, next to its twin::

    def relu_forward_numpy(x):                        # the readable version
        return np.maximum(x, 0)

    @njit(cache=True, nogil=True, twin=relu_forward_numpy)
    def relu_forward_numba(x):                        # the fast version: same numbers
        ...

That one line does two things:

1. **It registers the pair** under the name without the suffix (``"relu_forward"``) in ``KERNELS``. The fast
   engine asks a ``KernelTable`` for kernels by that name (``kernels.relu_forward(x)``); a table built with
   ``"numba"`` hands out the Numba kernels, one built with ``"numpy"`` their twins. The twin tests loop over
   ``KERNELS``, so no kernel goes unchecked. There is no other dispatcher.
2. **It makes a ``LazyKernel``**: importing minicnn does not import Numba (about 0.2 s); the first CALL of a
   kernel does, then hands the function to the real ``numba.njit(cache=True, nogil=True)``. Numba's disk cache
   (``cache=True``) is keyed on the source file and line, so a lazily decorated kernel finds the code an
   earlier process compiled. ``py_func`` is the plain Python function; other attributes (``signatures``,
   ``inspect_asm()``) are forwarded to Numba's dispatcher. ``NUMBA_DISABLE_JIT=1`` runs the kernels as plain
   Python, for stepping through in a debugger.

Why lazily, and the measurements behind it: docs/performance.md ("Start-up").
"""
from __future__ import annotations

import functools
import importlib
import sys
import threading
import types

_lock = threading.RLock()  # held while Numba is imported and while a dispatcher is created (re-entered then)
_numba = None              # the numba module, once load_numba() has run
_kernels = []              # every LazyKernel made so far (load_kernels() creates all their dispatchers)
KERNELS = {}               # name -> KernelPair: every kernel and its NumPy twin (see the module docstring)
KERNEL_MODULES = ("im2col", "pooling", "relu", "softmax_xent", "optim", "fused", "winograd", "single_channel",
                  "warp", "batch_norm", "dropout", "small_batch")


def numba_loaded() -> bool:
    """True once minicnn has imported Numba (``load_numba``): kernels then run without a first-call delay
    for the import (each kernel still loads its compiled code from the disk cache on its first call)."""
    return _numba is not None


def _load_numba_without_scipy_blas():
    """Load ``numba.np.arraymath`` without letting it import SciPy's BLAS wrappers (0.15 s of every fresh process,
    for jitted np.cov/np.corrcoef, which minicnn does not use: they then use a plain loop for one inner product).
    Measurements and the fine print: docs/performance.md ("Start-up")."""
    if "numba.np.arraymath" in sys.modules or "scipy.linalg" in sys.modules:
        return
    name = "scipy.linalg.cython_blas"
    sys.modules[name] = None  # "import scipy.linalg.cython_blas" now fails at once, without importing SciPy
    try:
        import numba.np.arraymath  # noqa: F401
    finally:
        if sys.modules.get(name, 0) is None:
            del sys.modules[name]


def load_numba():
    """Import Numba now (without SciPy's BLAS wrappers, see above) and return the module. Idempotent."""
    global _numba
    if _numba is None:
        with _lock:
            if _numba is None:
                _load_numba_without_scipy_blas()
                import numba
                _numba = numba
    return _numba


def load_kernels():
    """Import Numba and create the dispatcher of every kernel declared so far. Compiled code is still loaded
    (from the disk cache) or compiled per argument types on each kernel's first call: that needs the types."""
    for kernel in list(_kernels):
        kernel.load()


class LazyKernel:
    """A Numba kernel that does not exist yet: calling it (or ``load()``) creates it, then calls it.

    ``dispatcher`` is None until then, and afterwards what ``numba.njit(**options)`` returned (a Numba
    dispatcher; the Python function itself under ``NUMBA_DISABLE_JIT=1``).
    """

    def __init__(self, function, options):
        self.dispatcher = None
        self.py_func = function
        self.options = dict(options)
        functools.update_wrapper(self, function)  # __name__, __qualname__, __doc__, __module__, __wrapped__

    def load(self):
        """Create the Numba dispatcher now (importing Numba if needed) and return it (under
        ``NUMBA_DISABLE_JIT=1``, the Python function itself)."""
        dispatcher = self.dispatcher
        if dispatcher is None:
            with _lock:
                if self.dispatcher is None:
                    self.dispatcher = load_numba().njit(**self.options)(self._with_helpers_loaded())
                dispatcher = self.dispatcher
        return dispatcher

    def _with_helpers_loaded(self):
        """The function, seeing the Numba dispatchers of the lazy kernels it calls (its "helpers").

        Numba compiles a call from one kernel to another only if the callee's global name refers to a Numba
        dispatcher when the caller compiles. So the helpers are loaded first, and the caller gets a copy of its
        module's globals in which their names refer to their dispatchers (the module itself keeps the lazy
        objects). Keep a kernel's helpers in the kernel's own file: Numba's disk cache notices a change to the
        file it compiled from, not to another file the kernel calls into."""
        function = self.py_func
        helpers = {name: function.__globals__[name].load() for name in function.__code__.co_names
                   if isinstance(function.__globals__.get(name), LazyKernel)}
        if not helpers:
            return function
        copy = types.FunctionType(function.__code__, {**function.__globals__, **helpers}, function.__name__,
                                  function.__defaults__, function.__closure__)
        functools.update_wrapper(copy, function)  # the same name, qualified name and module: the same cache entry
        return copy

    def __call__(self, *args, **kwargs):
        dispatcher = self.dispatcher
        if dispatcher is None:
            dispatcher = self.load()
        return dispatcher(*args, **kwargs)

    def __getattr__(self, name):
        # Only reached for names this object does not have: those are the dispatcher's (signatures,
        # inspect_asm, ...). Special names are not forwarded (copy, pickle and friends must not load Numba).
        if name.startswith("__") or name in ("dispatcher", "py_func", "options"):
            raise AttributeError(name)
        return getattr(self.load(), name)

    def __reduce__(self):
        return self.__qualname__  # pickled by reference, like a function: the module attribute of that name

    def __repr__(self):
        state = "loaded" if self.dispatcher is not None else "not loaded yet"
        return f"<lazy Numba kernel {self.__module__}.{self.__qualname__} ({state})>"


class KernelPair:
    """A kernel's two versions: ``numpy`` (the twin, to read) and ``numba`` (a LazyKernel, to run)."""

    def __init__(self, name, numpy, numba):
        self.name, self.numpy, self.numba = name, numpy, numba

    def __repr__(self):
        return f"<kernel {self.name}: {self.numpy.__module__}.{self.numpy.__qualname__} / {self.numba.__qualname__}>"


def all_kernels():
    """``KERNELS`` once every kernel module has been imported (importing them does not import Numba)."""
    for module in KERNEL_MODULES:
        importlib.import_module(f"minicnn.kernels.{module}")
    return KERNELS


class KernelTable:
    """The kernels one engine runs: ``KernelTable("numba")`` or ``KernelTable("numpy")`` (the twins).

    ``table.relu_forward`` is the Numba dispatcher (or the twin); it is looked up once and then kept as an
    attribute, so a call costs what calling Numba's dispatcher costs.
    """

    def __init__(self, implementation):
        if implementation not in ("numba", "numpy"):
            raise ValueError(f"kernels must be 'numba' or 'numpy', got {implementation!r}")
        self.implementation = implementation

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        pair = KERNELS.get(name) or all_kernels().get(name)
        if pair is None:
            raise AttributeError(f"no kernel named {name!r}; the kernels are {sorted(all_kernels())}")
        function = pair.numpy if self.implementation == "numpy" else pair.numba.load()
        setattr(self, name, function)
        return function

    def __repr__(self):
        return f"KernelTable({self.implementation!r})"


def njit(function=None, twin=None, **options):
    """Like ``numba.njit``, lazily: ``@njit(cache=True, nogil=True, twin=f_numpy)`` makes a LazyKernel and, with
    ``twin``, registers the pair under the function's name without its ``_numba`` suffix."""
    def decorate(function):
        kernel = LazyKernel(function, options)
        _kernels.append(kernel)
        if twin is not None:
            name = function.__name__.removesuffix("_numba")
            KERNELS[name] = KernelPair(name, twin, kernel)
        return kernel

    if function is not None:
        if not callable(function):
            raise TypeError("njit takes keyword options only here (a signature list is not supported: "
                            "kernels are compiled for the argument types they are called with)")
        return decorate(function)
    return decorate
