"""``@njit`` that imports Numba only when a kernel is first called: the first tier of minicnn's tiered start.

Why. A fresh Python process that imports minicnn, loads a model and predicts one image spends most of its time
on Numba, not on the image: ``import numba`` takes ~0.17 s, and the first call of any kernel costs another
~0.12 s while Numba initialises its compiler target (LLVM) and loads the compiled kernels from its disk cache.
The prediction itself takes well under a millisecond. A JIT runtime (the JVM, V8, PyPy) has the same problem
and the same answer: **tiers**. Code starts in a cheap tier that needs no compiler (an interpreter), and is
moved to the compiled tier once it is clear that the process will run it often. minicnn has its cheap tier
ready-made: every Numba kernel has a NumPy twin that computes the same numbers.

So the kernels are declared with THIS ``njit`` instead of Numba's::

    from minicnn.kernels.jit import njit

    @njit(cache=True, nogil=True)
    def relu_forward_numba(x):
        ...

and ``relu_forward_numba`` is a ``LazyKernel``: a small object that remembers the function and the options.
Importing minicnn therefore does not import Numba at all. The first time a kernel is CALLED, it imports Numba
(``load_numba``), hands the function to the real ``numba.njit(cache=True, nogil=True)`` and from then on calls
the dispatcher Numba returned. Nothing else changes:

* Numba's disk cache (``cache=True``) is keyed on the function's source file, its qualified name and its line,
  not on WHEN it was decorated: a lazily decorated kernel finds the code an earlier process compiled.
* ``minicnn.backend.pick`` hands the engine the real Numba dispatcher once it exists, so the lazy object costs
  nothing per call on the engine's hot path (only direct calls like ``relu_forward_numba(x)`` go through it).
* Attributes a learner or a test may look at (``py_func``, ``signatures``, ``inspect_types()``,
  ``inspect_asm()``, ...) are forwarded to the dispatcher (reading one loads Numba). ``py_func``, the plain
  Python function, is there without loading anything.
* ``NUMBA_DISABLE_JIT=1`` still works: ``numba.njit`` then returns the Python function itself, and that is
  what the lazy kernel calls.
* Two threads may call a kernel for the first time at once: one of them loads, the other waits for it.

Deciding when NOT to load Numba at all (the first small prediction of a process runs on the NumPy twins) is
the second half of the tiered start, and lives in ``minicnn.backend`` (``cold_start``). ``load_numba()`` (or
``minicnn.warm_up()``) loads Numba now, for a program that prefers to pay at start-up.
"""
from __future__ import annotations

import functools
import sys
import threading
import types

_lock = threading.RLock()  # held while Numba is imported and while a dispatcher is created (re-entered then)
_numba = None              # the numba module, once load_numba() has run
_kernels = []              # every LazyKernel made so far (load_kernels() creates all their dispatchers)


def numba_loaded() -> bool:
    """True once minicnn has imported Numba (``load_numba``): kernels then run without a first-call delay
    for the import (each kernel still loads its compiled code from the disk cache on its first call)."""
    return _numba is not None


def _load_numba_without_scipy_blas():
    """Import the part of Numba that would otherwise import SciPy's BLAS wrappers on the first kernel call.

    The first time Numba compiles or loads ANY kernel it imports ``numba.np.arraymath``, which imports
    ``scipy.linalg.cython_blas`` (if SciPy is installed) for one purpose: deciding whether ``np.cov`` and
    ``np.corrcoef`` inside jitted code may call BLAS for an inner product. minicnn's kernels use neither, and that
    import costs ~0.15 s of every fresh process (a third of importing minicnn, loading a model and predicting
    one image). So, unless the program has imported SciPy's linear algebra already (then it costs nothing), the
    import is refused while ``numba.np.arraymath`` loads. The only effect on the rest of the process: jitted
    ``np.cov`` / ``np.corrcoef`` use a plain loop for that inner product. Everything else in Numba that needs
    BLAS (``np.dot``, ``np.linalg``) checks again when it is compiled, and then imports SciPy as usual.
    (For that moment, another thread importing ``scipy.linalg.cython_blas`` would fail; minicnn's kernels
    load under a lock, but a program that imports SciPy from another thread WHILE minicnn's first kernel
    loads should import SciPy's linear algebra first.)
    """
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
        """Create the Numba dispatcher now (importing Numba if needed) and return it."""
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


def njit(function=None, **options):
    """Like ``numba.njit``, lazily: ``@njit(cache=True, nogil=True)`` (or bare ``@njit``) makes a LazyKernel."""
    def decorate(function):
        kernel = LazyKernel(function, options)
        _kernels.append(kernel)
        return kernel

    if function is not None:
        if not callable(function):
            raise TypeError("njit takes keyword options only here (a signature list is not supported: "
                            "kernels are compiled for the argument types they are called with)")
        return decorate(function)
    return decorate
