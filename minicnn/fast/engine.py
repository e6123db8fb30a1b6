"""The fast engine: runs a model's plan (minicnn/fast/plan.py) with Numba kernels, over several threads.

It computes what the reference engine (minicnn/reference.py) computes, to float rounding, with:

1. **Fusion**: Conv2D -> ReLU -> MaxPool2D, Dense -> ReLU (or LeakyReLU) and BatchNormalization -> ReLU runs are
   single steps (plan.py); for predictions, Conv2D -> BatchNormalization [-> ReLU] [-> MaxPool2D] is one
   convolution with the moving statistics folded in (``inference_steps``);
2. **Reused buffers**: every array lives in a ``Workspace`` per thread (parallel.py);
3. **Threads**: a batch is split into parts, one per thread, each with its own gradient buffer, summed once
   per step (BatchNormalization's batch statistics are added up across the threads within the step:
   parallel.Reducer); BLAS is held to one thread meanwhile. A model without convolutions (an MLP) runs the
   whole batch on one thread and lets BLAS use the threads for its products instead (``blas_thread_choice``).

``FastEngine(layers, threads, kernels="numba")``; ``kernels="numpy"`` runs the same plan with every kernel's
NumPy twin (``Sequential(engine="twins")``), slowly, to check or read it.
"""
from __future__ import annotations

import os
import threading
import time

import numpy as np

from minicnn.fast import plan, small_batch, startup
from minicnn.fast.parallel import (
    ONE_BLAS_THREAD,
    Part,
    Reducer,
    Workspace,
    available_cores,
    blas_threads,
    resolve_threads,
    run_in_threads,
    split,
)
from minicnn.kernels.jit import KernelTable
from minicnn.layers import Conv2D, Dropout, Softmax
from minicnn.losses import softmax_cross_entropy

# A model without convolutions runs a batch of at least this many rows on one thread and lets BLAS use the threads
# for its products (training and predictions); smaller batches run on one thread with one BLAS thread. On a quiet
# machine BLAS's threads win from 32 rows on (MLP training 1.7-1.8x at batch 32-128, predictions 2.6x at 1000):
# two threads each with one BLAS thread and half the batch were 2.6x slower than BLAS's own two threads on an
# AVX2 AMD EPYC (docs/performance.md, "Models without convolutions").
BLAS_THREADS_MIN_ROWS = 32
# ... unless the machine is oversubscribed: BLAS's threads meet at every product (6 per MLP step) and wait for a
# descheduled partner; at load average 14-18 on 2 cores, one thread with one BLAS thread was 20-45x faster.
OVERSUBSCRIBED_LOAD = 1.0  # load average above the usable cores + this: oversubscribed
LOAD_CHECK_SECONDS = 1.0  # the load average is read at most this often
_load_seen = [-1e9, 0.0]  # (time.monotonic() when read, the 1-minute load average then)
# A prediction on a few images (never split over threads) holds BLAS to one thread, unless it is this much work:
# report001's one image (88 M multiply-adds, 95% in convolution products) 7.7-8.2 -> 4.8-5.5 ms with BLAS's two
# threads on a quiet AVX2 AMD EPYC; the seed, default and LeNet-5 CNNs (0.4-5.2 M) gained nothing or lost up to 30%.
SMALL_BATCH_BLAS_MIN_MULTIPLY_ADDS = 20_000_000


def one_minute_load():
    """The machine's 1-minute load average (0 where the system has none), read at most once a second."""
    now = time.monotonic()
    if now - _load_seen[0] > LOAD_CHECK_SECONDS:
        try:
            _load_seen[1] = os.getloadavg()[0]
        except (AttributeError, OSError):  # (not on this system)
            _load_seen[1] = 0.0
        _load_seen[0] = now
    return _load_seen[1]


def blas_thread_choice(threads, rows, small=None):
    """(BLAS threads, why) for a batch of ``rows`` rows on ``threads`` threads, of a model without convolutions; or,
    with ``small`` = the multiply-adds of a prediction on a few images (fast/small_batch.py), for that prediction."""
    if threads < 2:
        return 1, "one thread asked for"
    if small is None and rows < BLAS_THREADS_MIN_ROWS:
        return 1, f"fewer than {BLAS_THREADS_MIN_ROWS} rows: BLAS's threads would cost more than they save"
    if small is not None and small < SMALL_BATCH_BLAS_MIN_MULTIPLY_ADDS:
        return 1, (f"{small / 1e6:.1f} M multiply-adds, under {SMALL_BATCH_BLAS_MIN_MULTIPLY_ADDS / 1e6:.0f} M: "
                   "waking BLAS's threads would cost more than they save")
    load, cores = one_minute_load(), available_cores()
    if load > cores + OVERSUBSCRIBED_LOAD:
        return 1, (f"load average {load:.1f} on {cores} cores: BLAS's threads, which meet at every product, would "
                   "wait for each other")
    work = "" if small is None else f"{small / 1e6:.1f} M multiply-adds; "
    return threads, f"{work}load average {load:.1f} on {cores} cores"

NUMPY_TWINS = KernelTable("numpy")
NUMBA_KERNELS = KernelTable("numba")


def parameter_views(flat, layers):
    """Per layer, arrays shaped like its parameters, laid out in ``flat`` as the model's flat buffers are."""
    views, offset = [], 0
    for layer in layers:
        arrays = []
        for parameter in layer.parameters():
            arrays.append(flat[offset:offset + parameter.size].reshape(parameter.shape))
            offset += parameter.size
        views.append(arrays)
    return views


class FastEngine:
    def __init__(self, layers, threads=None, kernels="numba"):
        self.name = "fast" if kernels == "numba" else "twins"
        self.layers = list(layers)
        self.threads = threads
        self.kernels = NUMBA_KERNELS if kernels == "numba" else NUMPY_TWINS
        self.steps = plan.build_steps(self.layers)
        self.logit_steps = self.steps[:-1] if isinstance(self.steps[-1].layers[-1], Softmax) else self.steps
        # Predictions: the same, but a BatchNormalization right after a Conv2D is folded into it (plan.py)
        self.inference_steps = plan.build_steps(self.layers, inference=True)
        self.inference_logit_steps = (self.inference_steps[:-1] if isinstance(self.inference_steps[-1].layers[-1],
                                                                              Softmax) else self.inference_steps)
        self.blas_splits_batch = not any(isinstance(layer, Conv2D) for layer in self.layers)
        # A layer run as itself that must see the whole batch at once in training: the batch is not split over
        # threads (split, the model would compute something else than on the reference engine). The plan's own
        # BatchNormStep and DropoutStep do split: the threads add up their batch statistics (Part/Reducer in
        # parallel.py) and draw their rows of the whole batch's mask. Augmentation layers at the start of a model
        # (no parameters, nothing to backpropagate into) run on the whole batch in the calling thread, before the
        # batch is split: one draw per step, as on the reference engine; elsewhere in a model they keep it whole.
        self.leading = 0
        while self.leading < len(self.steps) - 1 and getattr(self.steps[self.leading].layers[0], "augments", False):
            self.leading += 1
        self.whole_batch = any(layer.needs_whole_batch for step in self.steps[self.leading:]
                               if isinstance(step, (plan.LayerStep, plan.AugmentStep)) for layer in step.layers)
        self.dropouts = [layer for layer in self.layers if isinstance(layer, Dropout)]
        self.small_batch = small_batch.SmallBatchPath(self.inference_steps)  # predictions on a few images
        self.workspaces = []
        self.thread_grads = []  # per extra thread: (flat gradient buffer, per-layer views into it)
        self._lock = threading.Lock()

    # -- per-thread resources
    def _workspace(self, slot):
        while len(self.workspaces) <= slot:
            self.workspaces.append(Workspace())
        return self.workspaces[slot]

    def _grads_for(self, slot, flat_grads):
        """Gradient arrays for extra thread ``slot`` >= 1: (flat buffer like flat_grads, per-layer views)."""
        while len(self.thread_grads) < slot:
            flat = np.zeros_like(flat_grads)
            self.thread_grads.append((flat, parameter_views(flat, self.layers)))
        return self.thread_grads[slot - 1]

    # -- one thread's work
    def _forward(self, steps, x, kernels, workspace, training):
        caches = []
        for step in steps:
            x, cache = step.forward(x, kernels, workspace, training)
            caches.append(cache)
        return x, caches

    def _loss_and_gradients(self, x, y, grads, scale, need_input_grad, kernels, workspace, skip=0):
        """``skip``: how many leading steps already ran on x (the augmentation, in ``gradients``)."""
        steps = self.logit_steps[skip:]
        logits, caches = self._forward(steps, x, kernels, workspace, True)
        loss = kernels.softmax_xent if y.ndim == 1 else softmax_cross_entropy  # (integer labels, or rows)
        loss_sum, dx = loss(np.ascontiguousarray(logits), y, scale)
        correct = int((logits.argmax(axis=1) == (y if y.ndim == 1 else y.argmax(axis=1))).sum())
        for number in range(len(steps) - 1, -1, -1):
            step = steps[number]
            dx = step.backward(dx, caches[number], grads[step.index], kernels, workspace,
                               number > 0 or need_input_grad)
        return loss_sum, correct, dx

    def augment(self, x):
        """The batch through the leading augmentation steps (training): each draws the whole batch's transforms in
        this thread (one draw per step, as on the reference engine), then the images are warped over the threads."""
        parts = split(len(x), resolve_threads(self.threads))
        for step in self.steps[:self.leading]:
            transforms = step.layer.next_transforms(len(x))
            out = np.empty_like(x)

            def part(slot, x=x, out=out, step=step, transforms=transforms):
                start, stop = parts[slot]
                out[start:stop] = step.warp(x[start:stop], transforms[start:stop], self.kernels)

            run_in_threads(part, len(parts))
            x = out
        return x

    def _advance_dropout(self):
        """One training call done: the next draws new masks (the reference engine's layers count their calls)."""
        for layer in self.dropouts:
            if layer.rate > 0:
                layer.calls += 1

    # -- what Sequential calls
    def loss_and_gradients(self, x, y, grads, scale, need_input_grad):
        """One thread: (sum of losses, correct predictions, dLoss/dx or None); parameter gradients into grads."""
        with self._lock, ONE_BLAS_THREAD:
            workspace = self._workspace(0)
            workspace.part = Part(0, len(x))
            loss_sum, correct, dx = self._loss_and_gradients(x, y, grads, scale, need_input_grad, self.kernels,
                                                             workspace)
            self._advance_dropout()
            return loss_sum, correct, (None if dx is None else np.array(dx))

    def gradients(self, x, y, grads, flat_grads):
        """The mean-loss gradient of a batch into ``grads`` (views into ``flat_grads``), the batch split over
        threads. Returns (sum of losses, correct predictions)."""
        threads = resolve_threads(self.threads)
        scale = 1.0 / len(x)
        skip = self.leading
        if skip:
            with self._lock:
                x = self.augment(x)
        if self.blas_splits_batch and blas_thread_choice(threads, len(x))[0] > 1:
            with self._lock, blas_threads(threads):
                workspace = self._workspace(0)
                workspace.part = Part(0, len(x))
                loss_sum, correct, _ = self._loss_and_gradients(x, y, grads, scale, False, self.kernels, workspace,
                                                                skip)
                self._advance_dropout()
            return loss_sum, correct
        parts = [(0, len(x))] if self.whole_batch or self.blas_splits_batch else split(len(x), threads)
        reducer = Reducer(len(parts))

        def part(slot):
            start, stop = parts[slot]
            own = grads if slot == 0 else self._grads_for(slot, flat_grads)[1]
            workspace = self._workspace(slot)
            workspace.part = Part(start, len(x), slot, reducer)
            try:
                loss_sum, correct, _ = self._loss_and_gradients(x[start:stop], y[start:stop], own, scale, False,
                                                                self.kernels, workspace, skip)
            except threading.BrokenBarrierError:
                return None  # another thread failed: its own error is the one raised (run_in_threads)
            except BaseException:
                reducer.abort()  # (a thread waiting for this one's batch statistics stops waiting)
                raise
            return loss_sum, correct

        with self._lock, ONE_BLAS_THREAD:
            for slot in range(1, len(parts)):  # (made here, before the threads start)
                self._workspace(slot), self._grads_for(slot, flat_grads)
            results = run_in_threads(part, len(parts))
            for slot in range(1, len(parts)):
                flat_grads += self._grads_for(slot, flat_grads)[0]
            self._advance_dropout()
        return sum(r[0] for r in results), sum(r[1] for r in results)

    def outputs(self, x, logits_only=False):
        """The model's outputs (or logits) for a prepared batch, split over threads; a new array."""
        steps = self.inference_logit_steps if logits_only else self.inference_steps
        if self.kernels is NUMBA_KERNELS and startup.claim_cold_start(len(x)):
            with self._lock:  # the first small prediction of the process: twins, this thread (fast/startup.py)
                self._workspace(0).part = Part(0, len(x))
                return np.array(self._forward(steps, x, NUMPY_TWINS, self._workspace(0), False)[0])
        if len(x) <= small_batch.MAX_IMAGES:
            return self._small_batch_outputs(x, logits_only)
        threads = resolve_threads(self.threads)
        if self.blas_splits_batch:  # (no convolutions: the whole batch on this thread, as in training)
            blas, _ = blas_thread_choice(threads, len(x))
            with self._lock, (blas_threads(blas) if blas > 1 else ONE_BLAS_THREAD):
                workspace = self._workspace(0)
                workspace.part = Part(0, len(x))
                return np.array(self._forward(steps, x, self.kernels, workspace, False)[0])
        parts = split(len(x), threads)
        with self._lock, ONE_BLAS_THREAD:  # (one BLAS thread even for one image: waking its threads costs more)
            for slot, (start, _) in enumerate(parts):  # (made here, before the threads start)
                self._workspace(slot).part = Part(start, len(x), slot)
            results = run_in_threads(
                lambda slot: np.array(self._forward(steps, x[parts[slot][0]:parts[slot][1]], self.kernels,
                                                    self._workspace(slot), False)[0]), len(parts))
        return results[0] if len(results) == 1 else np.concatenate(results)

    def _small_batch_outputs(self, x, logits_only):
        """A few images: this thread, the dense tail without BLAS (minicnn/fast/small_batch.py); BLAS on one thread
        for the other steps, unless the images are SMALL_BATCH_BLAS_MIN_MULTIPLY_ADDS of work (blas_thread_choice)."""
        path = self.small_batch
        work = len(x) * path.multiply_adds
        blas = 1 if work < SMALL_BATCH_BLAS_MIN_MULTIPLY_ADDS else blas_thread_choice(  # (the usual case: no call,
            resolve_threads(self.threads), len(x), work)[0]                           # resolving threads costs 4 us)
        with self._lock:
            workspace = self._workspace(0)
            workspace.part = Part(0, len(x))
            table = path.table() if len(x) <= small_batch.TAIL_MAX_IMAGES else None
            if table is None:
                with ONE_BLAS_THREAD if blas == 1 else blas_threads(blas):
                    steps = self.inference_logit_steps if logits_only else self.inference_steps
                    return np.array(self._forward(steps, x, self.kernels, workspace, False)[0])
            if path.head:
                with ONE_BLAS_THREAD if blas == 1 else blas_threads(blas):
                    x = self._forward(path.head, x, self.kernels, workspace, False)[0]
            return np.array(path.run_tail(x, table, self.kernels, workspace, logits_only))

    def warm_up(self):
        """Load Numba and every kernel now (see minicnn/fast/startup.py)."""
        if self.kernels is NUMBA_KERNELS:
            startup.load_numba_and_kernels()

    def plan(self, batch_size):
        """The plan as text for a batch of ``batch_size`` images (see minicnn/fast/plan.py)."""
        threads = 1 if self.blas_splits_batch or self.whole_batch else resolve_threads(self.threads)
        header = (f"fast engine, {'Numba kernels' if self.kernels is NUMBA_KERNELS else 'NumPy twins'}, "
                  f"batch {batch_size} over {len(split(batch_size, threads))} thread(s)")
        if self.blas_splits_batch:
            blas, why = blas_thread_choice(resolve_threads(self.threads), batch_size)
            header += f", BLAS on {blas} thread(s) ({why})"
        header += ":"
        text = header + "\n" + plan.describe(self.steps, batch_size, threads)
        folded = [step for step in self.inference_steps if isinstance(step, plan.FoldedConvStep)]
        if folded:
            text += ("\nat inference (moving statistics folded into the convolution before them):\n"
                     + plan.describe(folded, batch_size, resolve_threads(self.threads)))
        blas, why = blas_thread_choice(resolve_threads(self.threads), 1, self.small_batch.multiply_adds)
        return text + "\n" + self.small_batch.describe(f", BLAS on {blas} thread(s) for one image ({why})")
