"""Threads, BLAS and reused buffers: the machinery the fast engine runs its plan with.

* ``run_in_threads``: the fast engine splits a batch into parts, one per thread (``threads``, default
  min(2, cores), or MINICNN_THREADS); each thread takes its part through the whole network with its own
  ``Workspace`` and gradient buffer. The Numba kernels are serial and release the GIL (``nogil=True``).
* ``ONE_BLAS_THREAD``: BLAS is held to one thread meanwhile, because its own threads would fight ours for the
  same cores (measurements: docs/performance.md, "Threads").
* ``Workspace``: arrays reused from one step to the next instead of being allocated (and page-faulted in)
  again every step.
"""
from __future__ import annotations

import math
import os
import threading
from concurrent.futures import ThreadPoolExecutor, wait

import numpy as np

MIN_IMAGES_PER_THREAD = 4  # below this a thread costs more than it saves


def available_cores():
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def resolve_threads(threads):
    """The number of threads to use: ``threads`` if given, else MINICNN_THREADS, else min(2, cores)."""
    if threads is None:
        value = os.environ.get("MINICNN_THREADS", "").strip()
        if value:
            try:
                threads = int(value)
            except ValueError:
                raise ValueError(f"MINICNN_THREADS={value!r} is not a whole number") from None
        else:
            threads = min(2, available_cores())
    threads = int(threads)
    if threads < 1:
        raise ValueError(f"threads must be at least 1, got {threads}")
    return threads


def split(count, parts, minimum=MIN_IMAGES_PER_THREAD):
    """[(start, stop)] cutting range(count) into at most ``parts`` nearly equal pieces of >= ``minimum`` items."""
    parts = max(1, min(parts, count // minimum))
    bounds = [count * i // parts for i in range(parts + 1)]
    return [(bounds[i], bounds[i + 1]) for i in range(parts)]


class _BlasSingleThreaded:
    """``with ONE_BLAS_THREAD:`` holds BLAS (OpenBLAS, MKL, ...) to one thread, then restores it.

    Nestable and safe to enter from several threads: the first one in limits BLAS, the last one out restores it.
    (It talks to the BLAS libraries through threadpoolctl's per-library controllers: a few microseconds, where
    ``threadpoolctl.threadpool_limits`` takes about 11; every prediction and training step pays it.)
    """

    def __init__(self):
        self._lock = threading.Lock()
        self._depth = 0
        self._controller = None
        self._saved = []  # (library, its thread count before)

    def controller(self):
        """threadpoolctl's view of the BLAS libraries loaded, made once (finding them takes a while)."""
        if self._controller is None:
            from threadpoolctl import ThreadpoolController
            self._controller = ThreadpoolController().select(user_api="blas")
        return self._controller

    def __enter__(self):
        with self._lock:
            if self._depth == 0:
                self._saved = [(library, library.get_num_threads()) for library in self.controller().lib_controllers]
                for library, threads in self._saved:
                    if threads != 1:
                        library.set_num_threads(1)
            self._depth += 1
        return self

    def __exit__(self, *exc):
        with self._lock:
            self._depth -= 1
            if self._depth == 0:
                for library, threads in self._saved:
                    if threads != 1:
                        library.set_num_threads(threads)
                self._saved = []
        return False


ONE_BLAS_THREAD = _BlasSingleThreaded()


def blas_threads(count):
    """``with blas_threads(n):`` lets BLAS use n threads, then restores its setting (threadpoolctl)."""
    return ONE_BLAS_THREAD.controller().limit(limits=count, user_api="blas")

_pool = None
_pool_size = 0
_pool_pid = None
_pool_lock = threading.Lock()


def _worker_pool(workers):
    """The process-wide pool of worker threads: created on first use, grown if more are asked for, and created
    again in a child process after a fork (the parent's worker threads do not exist there)."""
    global _pool, _pool_size, _pool_pid
    with _pool_lock:
        if _pool is None or _pool_size < workers or _pool_pid != os.getpid():
            _pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="minicnn")
            _pool_size, _pool_pid = workers, os.getpid()
        return _pool


def run_in_threads(function, count):
    """[function(0), ..., function(count - 1)], index 0 on this thread and the others on worker threads."""
    if count == 1:
        return [function(0)]
    futures = [_worker_pool(count - 1).submit(function, index) for index in range(1, count)]
    try:
        first = function(0)
    finally:
        wait(futures)  # never return (or raise) while a worker still writes into shared buffers
    return [first] + [future.result() for future in futures]  # result() re-raises a worker's exception


class Workspace:
    """Arrays reused from call to call. ``get(key, shape, dtype)`` returns an array of that shape (contents
    undefined) backed by a buffer kept under ``key``, grown when a larger one is asked for and otherwise reused,
    so a fit() whose last batch is smaller, or predict() after fit(), allocates nothing new."""

    def __init__(self):
        self.part = Part(0, 0)  # the rows this thread computes (set by the engine for each call)
        self._buffers = {}
        self._views = {}  # (key, shape, dtype) -> the view last handed out (saves re-slicing every call)

    def get(self, key, shape, dtype):
        view = self._views.get((key, shape, dtype))
        if view is not None:
            return view
        size = math.prod(shape)
        buffer = self._buffers.get(key)
        if buffer is None or buffer.dtype != np.dtype(dtype) or buffer.size < size:
            buffer = np.empty(max(size, 1), dtype=dtype)
            self._buffers[key] = buffer
            self._views = {k: v for k, v in self._views.items() if k[0] != key}  # views of the old buffer
        if len(self._views) > 512:  # many different batch sizes: start over rather than grow
            self._views.clear()
        view = self._views[(key, shape, dtype)] = buffer[:size].reshape(shape)
        return view

    def nbytes(self):
        return sum(buffer.nbytes for buffer in self._buffers.values())


class Reducer:
    """Partial sums of the threads working on one batch, added up: what BatchNormalization's batch statistics need.

    ``total(key, slot, array)``: each of the ``count`` threads hands in its own array under the same key and waits
    until all have (a barrier); every thread then gets the same total, added in slot order (the same numbers on
    every thread). One Reducer per training step; a key per reduction (a layer's forward sums, its backward sums).
    A thread that fails calls ``abort()`` so that the others stop waiting (threading.BrokenBarrierError).
    """

    def __init__(self, count):
        self.count = count
        self._barrier = threading.Barrier(count) if count > 1 else None
        self._parts = {}

    def total(self, key, slot, array):
        if self._barrier is None:
            return array
        self._parts[key, slot] = array
        self._barrier.wait()
        total = self._parts[key, 0].copy()
        for other in range(1, self.count):
            total += self._parts[key, other]
        return total

    def abort(self):
        if self._barrier is not None:
            self._barrier.abort()


class Part:
    """Which rows of the batch a thread computes (``start`` of ``total``), its ``slot``, and the ``reducer`` that
    adds up its sums with the other threads' (None: one thread). Set on each thread's Workspace (``part``)."""

    def __init__(self, start, total, slot=0, reducer=None):
        self.start, self.total, self.slot, self.reducer = start, total, slot, reducer

    def total_of(self, key, array):
        """The sum of ``array`` over the threads (this thread's own if it is alone)."""
        return array if self.reducer is None else self.reducer.total(key, self.slot, array)
