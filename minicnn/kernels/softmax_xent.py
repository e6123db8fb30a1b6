"""Softmax and cross-entropy fused into one numerically stable step, with its gradient.

For one sample with logits z (K classes) and true class t::

    softmax(z)_k = exp(z_k - max z) / sum_j exp(z_j - max z)         (subtracting max z avoids overflow)
    loss         = -log softmax(z)_t = logsumexp(z) - z_t            (never takes the log of a rounded 0)
    dloss/dz_k   = softmax(z)_k - [k == t]

Over a batch, ``logits`` is (N, K) and ``labels`` (N,) integers; this returns the SUM of the per-sample losses
and the gradient of ``scale * sum`` (the caller passes scale = 1/batch size to get the mean).
"""
from __future__ import annotations

import numpy as np
from minicnn.kernels.jit import njit

from minicnn.backend import pick


def softmax_xent_numpy(logits, labels, scale):
    shifted = logits - logits.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    total = exp.sum(axis=1, keepdims=True)
    rows = np.arange(logits.shape[0])
    losses = np.log(total[:, 0]) - shifted[rows, labels]
    dlogits = exp / total
    dlogits[rows, labels] -= 1
    dlogits *= scale
    return float(losses.astype(np.float64).sum()), dlogits.astype(logits.dtype, copy=False)


@njit(cache=True, nogil=True)
def softmax_xent_numba(logits, labels, scale):
    batch, classes = logits.shape
    dlogits = np.empty_like(logits)
    scale = logits.dtype.type(scale)
    one = logits.dtype.type(1)
    loss_sum = 0.0
    for n in range(batch):
        largest = logits[n, 0]
        for k in range(1, classes):
            if logits[n, k] > largest:
                largest = logits[n, k]
        total = logits.dtype.type(0)
        for k in range(classes):
            e = np.exp(logits[n, k] - largest)
            dlogits[n, k] = e
            total += e
        label = labels[n]
        loss_sum += np.log(total) - (logits[n, label] - largest)
        inverse = one / total
        for k in range(classes):
            dlogits[n, k] *= inverse * scale
        dlogits[n, label] -= scale
    return loss_sum, dlogits


def softmax_xent(logits, labels, scale):
    """(loss sum, dlogits) for logits (N, K) and integer labels (N,); dlogits is the gradient of scale * sum."""
    return pick(softmax_xent_numpy, softmax_xent_numba)(
        np.ascontiguousarray(logits), np.ascontiguousarray(labels, dtype=np.int64), scale)
