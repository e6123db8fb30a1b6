"""Softmax + cross-entropy, fused into one numerically stable loss (see minicnn/kernels/softmax_xent.py).

    loss = mean over the batch of  -log softmax(logits)[true class]

Labels may be integers (N,) (Keras's "sparse_categorical_crossentropy") or one-hot / probability rows (N, K)
("categorical_crossentropy").
"""
from __future__ import annotations

import numpy as np

from minicnn.kernels.softmax_xent import softmax_xent

LOSSES = ("sparse_categorical_crossentropy", "categorical_crossentropy")


def softmax_cross_entropy(logits, labels, scale):
    """Returns (sum of per-sample losses, dlogits), dlogits being the gradient of ``scale * sum``.

    logits (N, K); labels (N,) integers in [0, K) or (N, K) target probabilities. Pass scale = 1 / N for the
    gradient of the mean loss.
    """
    labels = np.asarray(labels)
    if labels.ndim == 1:
        return softmax_xent(logits, labels, scale)
    # Target distributions t: loss = -sum_k t_k log softmax_k, gradient = softmax * sum(t) - t.
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_softmax = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    targets = labels.astype(logits.dtype)
    loss_sum = float(-(targets * log_softmax).sum(dtype=np.float64))
    dlogits = (np.exp(log_softmax) * targets.sum(axis=1, keepdims=True) - targets) * logits.dtype.type(scale)
    return loss_sum, dlogits
