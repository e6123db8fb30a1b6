"""Softmax + cross-entropy, fused into one numerically stable loss, with its gradient.

For one sample with logits z (K classes) and true class t::

    softmax(z)_k = exp(z_k - max z) / sum_j exp(z_j - max z)         (subtracting max z avoids overflow)
    loss         = -log softmax(z)_t = logsumexp(z) - z_t            (never takes the log of a rounded 0)
    dloss/dz_k   = softmax(z)_k - [k == t]

Over a batch: logits (N, K); labels (N,) integers in [0, K) (Keras's "sparse_categorical_crossentropy") or
(N, K) one-hot / probability rows ("categorical_crossentropy"). The functions return the SUM of the per-sample
losses and the gradient of ``scale * sum`` (pass scale = 1/N for the gradient of the mean loss).
The fast engine runs the integer-label case as one Numba kernel (minicnn/kernels/softmax_xent.py).
"""
from __future__ import annotations

import numpy as np

LOSSES = ("sparse_categorical_crossentropy", "categorical_crossentropy")


def sparse_softmax_cross_entropy(logits, labels, scale):
    """(sum of losses, dlogits) for logits (N, K) and integer labels (N,)."""
    # BEGIN SOLUTION task=loss.cross_entropy
    shifted = logits - logits.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    total = exp.sum(axis=1, keepdims=True)
    rows = np.arange(logits.shape[0])
    losses = np.log(total[:, 0]) - shifted[rows, labels]
    dlogits = exp / total
    dlogits[rows, labels] -= 1
    dlogits *= scale
    return float(losses.astype(np.float64).sum()), dlogits.astype(logits.dtype, copy=False)
    # END SOLUTION


def softmax_cross_entropy(logits, labels, scale):
    """(sum of losses, dlogits) for integer labels (N,) or target rows (N, K)."""
    labels = np.asarray(labels)
    if labels.ndim == 1:
        return sparse_softmax_cross_entropy(logits, labels, scale)
    # Target distributions t: loss = -sum_k t_k log softmax_k, gradient = softmax * sum(t) - t.
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_softmax = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    targets = labels.astype(logits.dtype)
    loss_sum = float(-(targets * log_softmax).sum(dtype=np.float64))
    dlogits = (np.exp(log_softmax) * targets.sum(axis=1, keepdims=True) - targets) * logits.dtype.type(scale)
    return loss_sum, dlogits
