"""Softmax + cross-entropy and its gradient in one pass: the Numba kernel of minicnn/losses.py (read that first).

``softmax_xent(logits, labels, scale)``: logits (N, K), integer labels (N,) -> (sum of the N losses, dlogits),
dlogits (N, K) being the gradient of ``scale * sum``. Its twin is ``losses.sparse_softmax_cross_entropy``.
"""
from __future__ import annotations

import numpy as np

from minicnn.kernels.jit import njit
from minicnn.losses import sparse_softmax_cross_entropy


@njit(cache=True, nogil=True, twin=sparse_softmax_cross_entropy)
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
