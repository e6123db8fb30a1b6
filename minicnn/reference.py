"""The reference engine: the layer files, run one after another, in plain NumPy. Read this first.

Training on one batch (``loss_and_gradients``)::

    forward   x -> layer 1 -> ... -> logits       each layer's forward(x) returns its output and a cache
    loss      softmax + cross-entropy on the logits, and dLoss/dlogits    (minicnn/losses.py)
    backward  dlogits -> last layer -> ... -> 1   each layer's backward(dy, cache) writes its parameter
                                                  gradients and returns dLoss/dx for the layer before

That is all: no fusion, no threads, no kernels. The optimizer then updates the parameters with its own NumPy
function (``kernels`` below: each kernel's NumPy twin). A layer function that raises (an exercise stub, say)
makes every call here fail, as it should. The fast engine (minicnn/fast/) computes the same numbers faster.
"""
from __future__ import annotations

from minicnn.kernels.jit import KernelTable
from minicnn.layers import Softmax
from minicnn.losses import softmax_cross_entropy


class ReferenceEngine:
    name = "reference"
    kernels = KernelTable("numpy")  # what the optimizers call: the NumPy versions of their updates

    def __init__(self, layers, threads=None):
        self.layers = list(layers)
        # A final Softmax is computed together with the loss (more stable), so training stops at the logits.
        self.logit_layers = self.layers[:-1] if isinstance(self.layers[-1], Softmax) else self.layers

    def loss_and_gradients(self, x, y, grads, scale, need_input_grad):
        """(sum of losses, correct predictions, dLoss/dx or None); each layer's parameter gradients of
        ``scale * sum of losses`` into ``grads`` (one list of arrays per layer)."""
        # BEGIN SOLUTION task=train.step
        caches = []
        for layer in self.logit_layers:
            x, cache = layer.forward(x, True)
            caches.append(cache)
        logits = x
        loss_sum, dx = softmax_cross_entropy(logits, y, scale)
        correct = int((logits.argmax(axis=1) == (y if y.ndim == 1 else y.argmax(axis=1))).sum())
        for index in range(len(self.logit_layers) - 1, -1, -1):
            dx = self.logit_layers[index].backward(dx, caches[index], grads[index],
                                                   need_input_grad=index > 0 or need_input_grad)
        return loss_sum, correct, dx
        # END SOLUTION

    def gradients(self, x, y, grads, flat_grads):
        """The mean-loss gradient of a batch into ``grads``. Returns (sum of losses, correct predictions)."""
        loss_sum, correct, _ = self.loss_and_gradients(x, y, grads, 1.0 / len(x), False)
        return loss_sum, correct

    def outputs(self, x, logits_only=False):
        """The model's outputs (or its logits) for a prepared batch."""
        for layer in self.logit_layers if logits_only else self.layers:
            x, _ = layer.forward(x, False)
        return x

    def warm_up(self):
        """Nothing to load: the reference engine never imports Numba."""

    def plan(self, batch_size):
        rows = [(layer.name, f"minicnn/layers/{type(layer).__module__.rsplit('.', 1)[-1]}.py") for layer in self.layers]
        width = max(len(name) for name, _ in rows)
        return "\n".join([f"reference engine: each layer's own forward/backward in NumPy, batch {batch_size}:"]
                         + [f"{name:<{width}}  {path}" for name, path in rows])
