"""Numerical gradient checking: compare backprop's gradients with central finite differences, in float64.

For a scalar loss L and one entry theta of a tensor::

    numerical dL/dtheta = (L(theta + eps) - L(theta - eps)) / (2 eps)        error O(eps^2)

and per tensor we report ``relative error = |analytic - numerical| / (|analytic| + |numerical|)`` with |.|
the Euclidean norm over the checked entries, and a verdict: PASS below ``tolerance`` (1e-6). In float64 with
eps = 1e-6 a correct layer gives about 1e-8 or less; a wrong backward pass gives 1e-3 or more. Accuracy alone
proves nothing: a broken backward pass can still make a model "learn".

    from minicnn.gradcheck import check_layer, check_model
    check_layer(Conv2D(4, 3, strides=2, padding="same"), input_shape=(7, 7, 3))
    report = check_model(model, x[:4], y[:4])        # prints one line per tensor and a summary
    assert report.passed

A layer is checked on L = sum(R * layer(x)) with a fixed random R, so that every output matters.

Everything is checked in training mode (BatchNormalization with its batch statistics). What a training forward
pass changes on a layer (moving statistics, a dropout layer's call counter, hence its mask) is put back
before every evaluation (``Layer.snapshot``/``restore``): every difference sees the same mask as backprop did.
The model's regularization penalties are part of the checked loss.

Kinks: ReLU at 0 and max-pool ties have no derivative, and a difference whose step crosses one measures a mix
of two slopes, not the gradient. Real images are full of them (black backgrounds are exact zeros: ReLU inputs
of exactly 0 in an untrained model, whole pooling windows tied), so every difference is taken only where its
steps cross none: each ReLU's on/off pattern and each max-pool window's choice (its first maximum) must be the
same at the stepped points as at theta. Then the loss is one smooth function over the steps, whose derivative
is what backprop computes (it uses theta's pattern). An entry is checked by the central difference if both
theta +- eps keep the pattern; else, at an exact kink, by a second-order one-sided difference on the side that
keeps it (the side of backprop's choice: ReLU off at 0, the first of tied maxima); else it is skipped (steps
both ways cross a kink: no derivative to check). Random entries are drawn until ``max_entries`` have been
checked; the report says how many were one-sided or skipped.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

TOLERANCE = 1e-6
DRAWS_PER_ENTRY = 10  # at most max_entries * DRAWS_PER_ENTRY entries are tried per tensor


@dataclass
class GradCheckResult:
    name: str
    shape: tuple
    relative_error: float
    entries_checked: int
    tolerance: float = TOLERANCE
    entries_one_sided: int = 0  # at a kink: checked with a one-sided difference on the side backprop chose
    entries_skipped: int = 0  # drawn, but every step crossed a kink on both sides

    @property
    def passed(self):
        return self.entries_checked > 0 and self.relative_error < self.tolerance

    def __str__(self):
        if self.entries_checked:
            outcome = f"rel. error {self.relative_error:.2e} {'<' if self.passed else '>='} {self.tolerance:.0e}"
        else:
            outcome = "nothing checked: every step crossed a kink"
        notes = [f"{self.entries_one_sided} one-sided"] if self.entries_one_sided else []
        notes += [f"{self.entries_skipped} skipped"] if self.entries_skipped else []
        at_kinks = f" ({', '.join(notes)} at kinks)" if notes else ""
        return (f"{'PASS' if self.passed else 'FAIL'}  {self.name:<16} {self.shape!s:<15} {outcome:<29} "
                f"checked {self.entries_checked}{at_kinks}")


class GradCheckReport(list):
    """The results of one check, one per tensor (a list), with an overall verdict."""

    def __init__(self, results, title):
        super().__init__(results)
        self.title = title

    @property
    def passed(self):
        return len(self) > 0 and all(result.passed for result in self)

    def summary(self):
        largest = max(self, key=lambda result: result.relative_error)
        if self.passed:
            return (f"all {len(self)} tensors pass (largest relative error {largest.relative_error:.1e} < "
                    f"{largest.tolerance:.0e})")
        failed = [result for result in self if not result.passed]
        names = ", ".join(result.name for result in failed)
        return f"{len(failed)} of {len(self)} tensors FAIL: {names} (see above)"

    def __str__(self):
        return "\n".join([self.title, *("  " + str(result) for result in self), self.summary()])


def relative_error(analytic, numerical):
    analytic, numerical = np.ravel(analytic), np.ravel(numerical)
    scale = np.linalg.norm(analytic) + np.linalg.norm(numerical)
    return float(np.linalg.norm(analytic - numerical) / max(scale, 1e-12))


def numerical_gradient(loss_fn, array, indices, epsilon):
    """Central differences of loss_fn() with respect to array.flat[indices] (array is perturbed in place)."""
    # BEGIN SOLUTION task=gradcheck.numerical_gradient
    flat = array.reshape(-1)
    gradient = np.empty(len(indices))
    for position, index in enumerate(indices):
        original = flat[index]
        flat[index] = original + epsilon
        plus = loss_fn()
        flat[index] = original - epsilon
        minus = loss_fn()
        flat[index] = original
        gradient[position] = (plus - minus) / (2 * epsilon)
    return gradient
    # END SOLUTION


# ---------------------------------------------------------------------------------------------- kinks
def pool_windows(layer, x):
    """Every window a MaxPool2D layer takes its maximum over, as (N, OH, OW, C, PH * PW), in row-major window
    order (the padding of "same" is -inf, as in the layer)."""
    from minicnn.layers.base import window_output_size

    (pool_h, pool_w), (stride_h, stride_w) = layer.pool_size, layer.strides
    out_h, pad_h = window_output_size(x.shape[1], pool_h, stride_h, layer.padding)
    out_w, pad_w = window_output_size(x.shape[2], pool_w, stride_w, layer.padding)
    if layer.padding == "same":
        x = np.pad(x, ((0, 0), pad_h, pad_w, (0, 0)), constant_values=-np.inf)
    windows = np.lib.stride_tricks.sliding_window_view(x, (pool_h, pool_w), axis=(1, 2))
    windows = windows[:, ::stride_h, ::stride_w][:, :out_h, :out_w]
    return windows.reshape(*windows.shape[:4], pool_h * pool_w)


def kink_pattern(layer, x):
    """What decides where the layer's gradient goes for input x: for a ReLU, which inputs are positive; for a
    MaxPool2D, which entry of each window is its (first) maximum; None for a layer without kinks."""
    from minicnn.layers import LeakyReLU, MaxPool2D, ReLU

    if isinstance(layer, ReLU):
        return x > 0
    if isinstance(layer, LeakyReLU):
        return x >= 0  # (its slope at exactly 0 is 1, as Keras on JAX: the positive side)
    if isinstance(layer, MaxPool2D):
        return pool_windows(layer, x).argmax(axis=-1)
    return None


def forward_with_pattern(layers, x):
    """Run the layers on x (training mode): (output, [kink pattern of every layer with kinks])."""
    pattern = []
    for layer in layers:
        decisions = kink_pattern(layer, x)
        if decisions is not None:
            pattern.append(decisions)
        x, _ = layer.forward(x, True)
    return x, pattern


def _same_pattern(a, b):
    return all(np.array_equal(p, q) for p, q in zip(a, b))


def _difference(flat, index, step, loss_and_pattern, base):
    """dL/dtheta for theta = flat[index] from steps that cross no kink, or None. ``base`` is (loss, pattern) at
    theta. Central if both theta +- step keep the pattern; else second-order one-sided on a side where theta + step
    and theta + 2 step both keep it (at an exact kink such as a ReLU input of exactly 0 or a tied window, the
    side that keeps the choice backprop made): (-3 L(0) + 4 L(h) - L(2h)) / 2h, also exact to O(h^2)."""
    base_loss, base_pattern = base
    original = flat[index]

    def at(offset):
        flat[index] = original + offset
        try:
            loss, pattern = loss_and_pattern()
        finally:
            flat[index] = original
        return loss, _same_pattern(pattern, base_pattern)

    (plus, plus_kept), (minus, minus_kept) = at(step), at(-step)
    if plus_kept and minus_kept:
        return (plus - minus) / (2 * step), False
    for sign, kept, near in ((1, plus_kept, plus), (-1, minus_kept, minus)):
        if kept:
            far, far_kept = at(2 * sign * step)
            if far_kept:
                return sign * (4 * near - 3 * base_loss - far) / (2 * step), True
    return None, False


def _check_tensor(name, array, analytic, loss_and_pattern, base, epsilon, max_entries, tolerance, rng):
    """Finite differences of random entries of ``array`` (perturbed in place, then restored) against
    ``analytic`` (the backprop gradient of the same shape); entries whose steps cross kinks are skipped."""
    flat, analytic = array.reshape(-1), np.ravel(analytic)
    if not np.shares_memory(flat, array):
        raise ValueError(f"{name}: the checked array must be contiguous (it is perturbed in place)")
    wanted = array.size if max_entries is None else min(max_entries, array.size)
    order = rng.permutation(array.size) if wanted < array.size else np.arange(array.size)
    if max_entries is not None:
        order = order[:max_entries * DRAWS_PER_ENTRY]
    checked, numerical, one_sided, skipped = [], [], 0, 0
    for index in order:
        if len(checked) == wanted:
            break
        estimate, at_kink = _difference(flat, index, epsilon, loss_and_pattern, base)
        if estimate is None:
            skipped += 1
            continue
        checked.append(index)
        numerical.append(estimate)
        one_sided += at_kink
    error = relative_error(analytic[checked], numerical) if checked else float("nan")
    return GradCheckResult(name, tuple(array.shape), error, len(checked), tolerance, one_sided, skipped)


def _report(results, title, verbose):
    report = GradCheckReport(results, title)
    if verbose:
        print(report)
    return report


# ---------------------------------------------------------------------------------------------- the checks
def check_layer(layer, input_shape, batch_size=2, seed=0, epsilon=1e-6, max_entries=None, verbose=True,
                x=None, tolerance=TOLERANCE):
    """Check one (unbuilt) layer's input and parameter gradients in float64. Returns a GradCheckReport (a list
    of GradCheckResult, one per tensor, with ``.passed``) and prints it unless ``verbose=False``."""
    rng = np.random.default_rng(seed)
    if layer.dtype is None:
        layer.build(tuple(input_shape), np.float64, rng)
    if layer.dtype != np.float64:
        raise ValueError("gradient checks need a float64 layer: pass an unbuilt layer")
    if x is None:
        x = rng.standard_normal((batch_size, *layer.input_shape))
    x = np.array(x, dtype=np.float64)
    before = layer.snapshot()
    y, cache = layer.forward(x, True)
    after = layer.snapshot()
    projection = rng.standard_normal(y.shape)

    def loss_and_pattern():
        layer.restore(before)
        output, pattern = forward_with_pattern([layer], x)
        return float((projection * output).sum()), pattern

    grads = [np.zeros(p.shape) for p in layer.parameters()]
    dx = layer.backward(projection, cache, grads, need_input_grad=True)
    base = loss_and_pattern()
    tensors = [("input", x, dx)] + [(p.name, p.value, g) for p, g in zip(layer.parameters(), grads)]
    results = [_check_tensor(name, array, analytic, loss_and_pattern, base, epsilon, max_entries,
                             tolerance, rng) for name, array, analytic in tensors]
    layer.restore(after)
    return _report(results, f"gradient check of {layer!r}", verbose)


def mean_cross_entropy(logits, labels):
    """The mean softmax cross-entropy of logits (N, K) and integer or one-hot labels, to nearly full float64
    precision also for confident predictions: with m the largest logit, -log softmax(z)_j =
    (m - z_j) + log1p(sum of exp(z_k - m) over the other k). (The usual logsumexp(z) - z_j keeps a small loss
    only to the rounding of the large logits, about 1e-15; differences over steps of 1e-6 turn that into gradient
    errors of 1e-9, near 1e-6 relative for a well-trained model, whose gradients are small.)"""
    count, classes = logits.shape
    targets = labels if labels.ndim == 2 else np.eye(classes)[labels]
    rows, top = np.arange(count), logits.argmax(axis=1)
    largest = logits[rows, top][:, None]
    others = np.exp(logits - largest)
    others[rows, top] = 0.0
    log_sum = np.log1p(others.sum(axis=1))  # log(sum of exp(z_k - m)), the largest term (1) taken out
    return float(((targets * (largest - logits)).sum() + (targets.sum(axis=1) * log_sum).sum()) / count)


def _model_internals(model, x, y):
    """x and y as the model prepares them, and the layers that compute the logits (all but a final Softmax,
    which the loss includes)."""
    x = model.prepare_inputs(x).copy()
    return x, model.prepare_labels(y, len(x)), model.logit_layers()


def check_model(model, x, y, seed=0, epsilon=1e-6, max_entries=50, verbose=True, tolerance=TOLERANCE):
    """Check every parameter gradient (and the input gradient) of a whole model on (x, y), in float64.

    A float32 model is copied to float64 first. ``max_entries`` random kink-free entries per tensor are checked
    (None checks all of them). Returns a GradCheckReport (a list of GradCheckResult, one per tensor, with
    ``.passed``) and prints it unless ``verbose=False``.
    """
    if model.dtype != np.float64:
        model = model.clone(dtype="float64")
    rng = np.random.default_rng(seed)
    x, y, logit_layers = _model_internals(model, x, y)
    before = [layer.snapshot() for layer in model.layers]

    def loss_and_pattern():
        for layer, snapshot in zip(model.layers, before):
            layer.restore(snapshot)
        logits, pattern = forward_with_pattern(logit_layers, x)
        return mean_cross_entropy(logits, y) + model.regularization_penalty(), pattern

    dx = model.loss_and_gradients(x, y, need_input_grad=True)[2].copy()
    after = [layer.snapshot() for layer in model.layers]
    base = loss_and_pattern()
    tensors = [("input", x, dx)] + [(f"{layer.name}.{parameter.name}", parameter.value, parameter.grad)
                                    for layer in model.layers for parameter in layer.parameters()]
    results = [_check_tensor(name, array, analytic, loss_and_pattern, base, epsilon, max_entries,
                             tolerance, rng) for name, array, analytic in tensors]
    for layer, snapshot in zip(model.layers, after):
        layer.restore(snapshot)
    return _report(results, f"gradient check of model {model.name!r}", verbose)
