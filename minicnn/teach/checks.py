"""The hidden checks: inputs, expected values and the comparison, all on the grader's side.

Every check runs one probe of minicnn/teach/runner.py on fixed inputs. Its expected outputs are either the
solution's own outputs ("reference values") or, for gradients, central finite differences of the solution's
forward pass in float64 (``minicnn.gradcheck.numerical_gradient``): a backward pass must agree with the
derivative of the forward, not only with our code. A student output passes when its relative error (the norm
form of minicnn.gradcheck) is below 1e-6; integer outputs must match exactly.

A failing output gets a readable message: an exception with the line of the submission that raised it, a
wrong shape (transposed?), NaN where the values are finite (overflow?), a constant factor (the batch size?),
and, when the student's outputs equal those of a chaff of the bug pack, that chaff's one-line description.
"""
from __future__ import annotations

import zlib
from dataclasses import dataclass, field

import numpy as np

from minicnn.gradcheck import numerical_gradient, relative_error
from minicnn.teach import runner
from minicnn.teach.tasks import END_TO_END, END_TO_END_POINTS, TASKS

TOLERANCE = 1e-6


@dataclass
class Check:
    name: str
    task: str
    title: str
    probe: str
    make_inputs: object  # rng -> inputs dict
    numerical: object = None  # inputs -> {output: finite-difference gradient}, replacing reference values
    batch_size: int = None
    keys: tuple = field(default=())  # outputs compared (default: all the solution returns)

    def inputs(self):
        return self.make_inputs(np.random.default_rng(zlib.crc32(self.name.encode())))


def _fd(forward, arrays, name, projection):
    """Finite differences of sum(projection * forward()) with respect to arrays[name] (perturbed in place)."""
    array = arrays[name]
    return numerical_gradient(lambda: float((projection * forward()).sum()), array, list(range(array.size)),
                              1e-6).reshape(array.shape)


# ---------------------------------------------------------------------------------------------- inputs
def relu_inputs(rng, zeros=True):
    x = rng.standard_normal((3, 4, 5))
    if zeros:
        x.flat[::7] = 0.0
    else:
        x += np.sign(x) * 0.1
    return {"x": x, "y": np.maximum(x, 0), "dy": rng.standard_normal(x.shape)}


def relu_gradcheck(inputs):
    from minicnn.layers.relu import relu_forward
    x = inputs["x"].copy()
    return {"dx": _fd(lambda: relu_forward(x)[0], {"x": x}, "x", inputs["dy"])}


def leaky_relu_inputs(rng, zeros=True):
    x = rng.standard_normal((3, 4, 5))
    if zeros:
        x.flat[::7] = 0.0  # the slope at exactly 0 is 1 (Keras)
    else:
        x += np.sign(x) * 0.1
    return {"x": x, "slope": 0.2, "mask": x >= 0, "dy": rng.standard_normal(x.shape)}


def leaky_relu_gradcheck(inputs):
    from minicnn.layers.leaky_relu import leaky_relu_forward
    x = inputs["x"].copy()
    return {"dx": _fd(lambda: leaky_relu_forward(x, inputs["slope"])[0], {"x": x}, "x", inputs["dy"])}


def dense_inputs(rng):
    return {"x": rng.standard_normal((4, 3)), "kernel": rng.standard_normal((3, 5)), "bias": rng.standard_normal(5),
            "dy": rng.standard_normal((4, 5))}


def dense_gradcheck(inputs):
    from minicnn.layers.dense import dense_forward
    arrays = {key: inputs[key].copy() for key in ("x", "kernel", "bias")}
    forward = lambda: dense_forward(arrays["x"], arrays["kernel"], arrays["bias"])[0]  # noqa: E731
    return {"dx": _fd(forward, arrays, "x", inputs["dy"]), "dkernel": _fd(forward, arrays, "kernel", inputs["dy"]),
            "dbias": _fd(forward, arrays, "bias", inputs["dy"])}


def softmax_inputs(rng, large=False):
    x = rng.standard_normal((4, 6)) * 3
    if large:  # rows far apart: a shift by one max for the whole batch underflows the low rows to 0/0
        x += np.array([[1000.0], [-800.0], [0.0], [400.0]])
    from minicnn.layers.softmax import softmax_forward
    return {"x": x, "y": softmax_forward(x)[0], "dy": rng.standard_normal(x.shape)}


def softmax_gradcheck(inputs):
    from minicnn.layers.softmax import softmax_forward
    x = inputs["x"].copy()
    return {"dx": _fd(lambda: softmax_forward(x)[0], {"x": x}, "x", inputs["dy"])}


def loss_inputs(rng, large=False):
    logits = rng.standard_normal((5, 4)) * 2
    labels = rng.integers(0, 4, 5)
    if large:  # confident and wrong: softmax of the label rounds to 0, its log to -inf
        logits[np.arange(5), (labels + 1) % 4] += 1000.0
    return {"logits": logits, "labels": labels, "scale": 1 / 5}


def loss_gradcheck(inputs):
    from minicnn.losses import sparse_softmax_cross_entropy
    logits = inputs["logits"].copy()
    gradient = numerical_gradient(
        lambda: inputs["scale"] * sparse_softmax_cross_entropy(logits, inputs["labels"], 1.0)[0], logits,
        list(range(logits.size)), 1e-6)
    return {"dlogits": gradient.reshape(logits.shape)}


def numerical_gradient_inputs(rng):
    return {"array": rng.standard_normal((3, 4)), "weights": rng.standard_normal((3, 4)), "indices": [0, 5, 7, 11],
            "epsilon": 1e-3}  # a large step: an entry left unrestored shows plainly


def pool_inputs(rng, overlap=False, ties=False, zeros=False):
    if overlap:
        x, pool, strides = rng.standard_normal((2, 7, 6, 2)), (3, 2), (2, 1)
    else:
        x, pool, strides = rng.standard_normal((2, 4, 5, 3)), (2, 2), (2, 2)
    if ties:
        x = rng.integers(0, 3, x.shape).astype(np.float64)
    out_h = (x.shape[1] - pool[0]) // strides[0] + 1
    out_w = (x.shape[2] - pool[1]) // strides[1] + 1
    from minicnn.layers.maxpool2d import window_maxima
    _, argmax = window_maxima(x, pool, strides, out_h, out_w)
    dx = np.zeros_like(x) if zeros else rng.standard_normal(x.shape)
    return {"x": x, "pool_size": list(pool), "strides": list(strides), "out_h": out_h, "out_w": out_w,
            "argmax": argmax, "dy": rng.standard_normal((x.shape[0], out_h, out_w, x.shape[3])), "dx": dx}


def pool_gradcheck(inputs):
    from minicnn.layers.maxpool2d import window_maxima
    x = inputs["x"].copy()
    forward = lambda: window_maxima(x, tuple(inputs["pool_size"]), tuple(inputs["strides"]),  # noqa: E731
                                    inputs["out_h"], inputs["out_w"])[0]
    return {"dx": _fd(forward, {"x": x}, "x", inputs["dy"])}


def columns_inputs(rng, strided=False):
    if strided:
        x, kernel_size, strides = rng.standard_normal((2, 7, 6, 2)), (3, 3), (2, 1)
    else:
        x, kernel_size, strides = rng.standard_normal((2, 5, 4, 3)), (3, 2), (1, 1)
    out_h = (x.shape[1] - kernel_size[0]) // strides[0] + 1
    out_w = (x.shape[2] - kernel_size[1]) // strides[1] + 1
    rows = x.shape[0] * out_h * out_w
    return {"x": x, "kernel_size": list(kernel_size), "strides": list(strides), "out_h": out_h, "out_w": out_w,
            "columns": rng.standard_normal((rows, kernel_size[0] * kernel_size[1] * x.shape[3])),
            "dx": rng.standard_normal(x.shape)}


def conv_inputs(rng, strided_same=False, batch=2):
    from minicnn.layers.conv2d import conv2d_forward
    if strided_same:  # H = 6, K = 3, stride 2: one row of padding, at the bottom (Keras's rule)
        x, kernel, strides, padding = (rng.standard_normal((batch, 6, 7, 2)), rng.standard_normal((3, 3, 2, 3)),
                                       (2, 2), "same")
    else:
        x, kernel, strides, padding = (rng.standard_normal((batch, 5, 6, 3)), rng.standard_normal((3, 2, 3, 4)),
                                       (1, 1), "valid")
    bias = rng.standard_normal(kernel.shape[3])
    y, (x_padded, columns, _, _, pad_h, pad_w) = conv2d_forward(x, kernel, bias, strides, padding)
    return {"x": x, "kernel": kernel, "bias": bias, "strides": list(strides), "padding": padding,
            "x_padded": x_padded, "columns": columns, "pad_h": list(pad_h), "pad_w": list(pad_w),
            "dy": rng.standard_normal(y.shape)}


def conv_gradcheck(inputs):
    from minicnn.layers.conv2d import conv2d_forward
    arrays = {key: inputs[key].copy() for key in ("x", "kernel", "bias")}
    forward = lambda: conv2d_forward(arrays["x"], arrays["kernel"], arrays["bias"],  # noqa: E731
                                     tuple(inputs["strides"]), inputs["padding"])[0]
    return {"dx": _fd(forward, arrays, "x", inputs["dy"]), "dkernel": _fd(forward, arrays, "kernel", inputs["dy"]),
            "dbias": _fd(forward, arrays, "bias", inputs["dy"])}


def dropout_inputs(rng):
    x = rng.standard_normal((4, 3, 5))
    return {"x": x, "rate": 0.3, "mask": rng.random(x.shape) >= 0.3, "seed": 7, "dy": rng.standard_normal(x.shape)}


def dropout_gradcheck(inputs):
    from minicnn.layers.dropout import dropout_forward
    x = inputs["x"].copy()
    return {"dx": _fd(lambda: dropout_forward(x, inputs["rate"], inputs["mask"])[0], {"x": x}, "x", inputs["dy"])}


def batch_normalization_inputs(rng, conv=False, training=True, scale=True):
    from minicnn.layers.batch_normalization import batch_statistics
    x = rng.standard_normal((3, 4, 2, 5) if conv else (6, 5)) * 2 + 1
    if training:
        mean, variance = batch_statistics(x)
    else:
        mean, variance = rng.standard_normal(5), rng.random(5) + 0.5
    return {"x": x, "gamma": rng.standard_normal(5) if scale else None, "beta": rng.standard_normal(5),
            "mean": mean, "variance": variance, "epsilon": 1e-3, "training": training,
            "dy": rng.standard_normal(x.shape)}


def batch_normalization_gradcheck(inputs):
    """Finite differences of the whole training forward pass: the batch statistics move with x."""
    from minicnn.layers.batch_normalization import batch_normalization_forward, batch_statistics
    arrays = {key: inputs[key].copy() for key in ("x", "gamma", "beta")}

    def forward():
        mean, variance = batch_statistics(arrays["x"])
        return batch_normalization_forward(arrays["x"], arrays["gamma"], arrays["beta"], mean, variance,
                                           inputs["epsilon"])[0]
    return {"dx": _fd(forward, arrays, "x", inputs["dy"]), "dgamma": _fd(forward, arrays, "gamma", inputs["dy"]),
            "dbeta": _fd(forward, arrays, "beta", inputs["dy"])}


def adam_inputs(rng, steps=1):
    size = 7
    beta_1, beta_2, learning_rate = 0.9, 0.999, 0.01
    start = 0 if steps > 1 else 3
    alphas = [learning_rate * np.sqrt(1 - beta_2 ** t) / (1 - beta_1 ** t) for t in range(start + 1, start + steps + 1)]
    return {"params": rng.standard_normal(size), "grads": [rng.standard_normal(size) for _ in range(steps)],
            "m": np.zeros(size) if steps > 1 else rng.standard_normal(size) * 0.1,
            "v": np.zeros(size) if steps > 1 else rng.random(size) * np.array([0.1, 1e-12, 1e-14] * 3)[:size],
            "alphas": alphas, "one_minus_beta_1": 1 - beta_1, "one_minus_beta_2": 1 - beta_2, "epsilon": 1e-7}


def train_inputs(rng, need_input_grad=True):
    x = rng.standard_normal((5, 3))
    return {"x": x, "y": np.eye(3)[rng.integers(0, 3, 5)], "w1": rng.standard_normal(3), "c1": rng.standard_normal(3),
            "w2": rng.standard_normal(3) * 2, "c2": rng.standard_normal(3), "scale": 1 / 5,
            "need_input_grad": need_input_grad}


def end_to_end_inputs(rng):
    return {"x": rng.random((8, 6, 6, 1)), "y": rng.integers(0, 4, 8)}


CHECKS = [
    Check("relu.forward", "relu.forward", "ReLU forward (with exact zeros)", "relu_forward", relu_inputs),
    Check("relu.backward", "relu.backward", "ReLU backward against reference values (zeros included)",
          "relu_backward", relu_inputs),
    Check("relu.backward.gradcheck", "relu.backward", "ReLU backward against finite differences",
          "relu_backward", lambda rng: relu_inputs(rng, zeros=False), relu_gradcheck),
    Check("leaky_relu.forward", "leaky_relu.forward", "LeakyReLU forward (with exact zeros) and its mask",
          "leaky_relu_forward", leaky_relu_inputs),
    Check("leaky_relu.backward", "leaky_relu.backward", "LeakyReLU backward against reference values",
          "leaky_relu_backward", leaky_relu_inputs),
    Check("leaky_relu.backward.gradcheck", "leaky_relu.backward", "LeakyReLU backward against finite differences",
          "leaky_relu_backward", lambda rng: leaky_relu_inputs(rng, zeros=False), leaky_relu_gradcheck),
    Check("dense.forward", "dense.forward", "Dense forward", "dense_forward", dense_inputs),
    Check("dense.backward", "dense.backward", "Dense backward against reference values", "dense_backward",
          dense_inputs, batch_size=4),
    Check("dense.backward.gradcheck", "dense.backward", "Dense backward against finite differences",
          "dense_backward", dense_inputs, dense_gradcheck, batch_size=4),
    Check("softmax.forward", "softmax.forward", "Softmax forward", "softmax_forward", softmax_inputs),
    Check("softmax.forward.large", "softmax.forward", "Softmax forward on logits of +-1000 (stability)",
          "softmax_forward", lambda rng: softmax_inputs(rng, large=True), keys=("y",)),
    Check("softmax.backward", "softmax.backward", "Softmax backward against reference values", "softmax_backward",
          softmax_inputs),
    Check("softmax.backward.gradcheck", "softmax.backward", "Softmax backward against finite differences",
          "softmax_backward", softmax_inputs, softmax_gradcheck),
    Check("loss.values", "loss.cross_entropy", "Cross-entropy: loss and gradient", "cross_entropy", loss_inputs,
          batch_size=5),
    Check("loss.large_logits", "loss.cross_entropy", "Cross-entropy on logits of 1000, confidently wrong",
          "cross_entropy", lambda rng: loss_inputs(rng, large=True), batch_size=5),
    Check("loss.gradcheck", "loss.cross_entropy", "Cross-entropy gradient against finite differences",
          "cross_entropy", loss_inputs, loss_gradcheck, batch_size=5, keys=("dlogits",)),
    Check("gradcheck.numerical_gradient", "gradcheck.numerical_gradient", "Central differences on a smooth loss",
          "numerical_gradient", numerical_gradient_inputs),
    Check("maxpool2d.forward", "maxpool2d.forward", "Window maxima and argmax, with ties", "window_maxima",
          lambda rng: pool_inputs(rng, ties=True)),
    Check("maxpool2d.forward.overlap", "maxpool2d.forward", "Window maxima, 3x2 windows, strides (2, 1)",
          "window_maxima", lambda rng: pool_inputs(rng, overlap=True)),
    Check("maxpool2d.backward", "maxpool2d.backward", "Max-pool backward, with ties", "add_at_maxima",
          lambda rng: pool_inputs(rng, ties=True)),
    Check("maxpool2d.backward.overlap", "maxpool2d.backward", "Max-pool backward, overlapping windows",
          "add_at_maxima", lambda rng: pool_inputs(rng, overlap=True)),
    Check("maxpool2d.backward.gradcheck", "maxpool2d.backward", "Max-pool backward against finite differences",
          "add_at_maxima", lambda rng: pool_inputs(rng, overlap=True, zeros=True), pool_gradcheck),
    Check("conv2d.im2col", "conv2d.im2col", "im2col, 3x2 kernel, stride 1", "im2col", columns_inputs),
    Check("conv2d.im2col.strided", "conv2d.im2col", "im2col, 3x3 kernel, strides (2, 1)", "im2col",
          lambda rng: columns_inputs(rng, strided=True)),
    Check("conv2d.col2im", "conv2d.col2im", "col2im, stride 1 (adds into dx)", "col2im", columns_inputs),
    Check("conv2d.col2im.strided", "conv2d.col2im", "col2im, strides (2, 1), overlapping windows", "col2im",
          lambda rng: columns_inputs(rng, strided=True)),
    Check("conv2d.forward", "conv2d.forward", "Conv2D forward, valid, stride 1", "conv2d_forward", conv_inputs),
    Check("conv2d.forward.strided_same", "conv2d.forward", "Conv2D forward, same, stride 2 (odd padding)",
          "conv2d_forward", lambda rng: conv_inputs(rng, strided_same=True)),
    Check("conv2d.backward", "conv2d.backward", "Conv2D backward against reference values, valid",
          "conv2d_backward", lambda rng: conv_inputs(rng, batch=3), batch_size=3),
    Check("conv2d.backward.strided_same", "conv2d.backward", "Conv2D backward, same, stride 2",
          "conv2d_backward", lambda rng: conv_inputs(rng, strided_same=True, batch=3), batch_size=3),
    Check("conv2d.backward.gradcheck", "conv2d.backward", "Conv2D backward against finite differences, same, "
          "stride 2", "conv2d_backward", lambda rng: conv_inputs(rng, strided_same=True, batch=3), conv_gradcheck,
          batch_size=3),
    Check("dropout.forward", "dropout.forward", "dropout_forward with a given mask, rate 0.3", "dropout_forward",
          dropout_inputs),
    Check("dropout.forward.layer", "dropout.forward", "The Dropout layer: two training calls, inference, rate 0",
          "dropout_layer", dropout_inputs),
    Check("dropout.backward", "dropout.backward", "Dropout backward against reference values", "dropout_backward",
          dropout_inputs),
    Check("dropout.backward.gradcheck", "dropout.backward", "Dropout backward against finite differences",
          "dropout_backward", dropout_inputs, dropout_gradcheck),
    Check("batch_normalization.backward", "batch_normalization.backward",
          "BatchNormalization backward in training after Dense (N, F)", "batch_normalization_backward",
          batch_normalization_inputs, batch_size=6),
    Check("batch_normalization.backward.conv", "batch_normalization.backward",
          "BatchNormalization backward in training after Conv2D (N, H, W, C)", "batch_normalization_backward",
          lambda rng: batch_normalization_inputs(rng, conv=True), batch_size=3),
    Check("batch_normalization.backward.gradcheck", "batch_normalization.backward",
          "BatchNormalization backward against finite differences of the training forward (N, H, W, C)",
          "batch_normalization_backward", lambda rng: batch_normalization_inputs(rng, conv=True),
          batch_normalization_gradcheck, batch_size=3),
    Check("batch_normalization.backward.inference", "batch_normalization.backward",
          "BatchNormalization backward at inference (moving statistics, constants)", "batch_normalization_backward",
          lambda rng: batch_normalization_inputs(rng, training=False), batch_size=6),
    Check("batch_normalization.backward.no_scale", "batch_normalization.backward",
          "BatchNormalization backward with scale=False (gamma None)", "batch_normalization_backward",
          lambda rng: batch_normalization_inputs(rng, scale=False), batch_size=6),
    Check("adam.update", "adam.update", "One Adam update in place (params, m, v)", "adam_update", adam_inputs),
    Check("adam.steps", "adam.update", "Five Adam updates from m = v = 0", "adam_update",
          lambda rng: adam_inputs(rng, steps=5)),
    Check("adam.step_size", "adam.step_size", "Adam's step size at the first step", "adam_step_size",
          lambda rng: {"config": {"learning_rate": 0.01, "beta_1": 0.8, "beta_2": 0.99}, "iterations": 0}),
    Check("adam.step_size.later", "adam.step_size", "Adam's step size at the fifth step", "adam_step_size",
          lambda rng: {"config": {"learning_rate": 0.01, "beta_1": 0.8, "beta_2": 0.99}, "iterations": 4}),
    Check("train.step", "train.step", "One training step on three layers of the grader's", "train_step",
          train_inputs, batch_size=5),
    Check("train.step.no_input_grad", "train.step", "A training step without the input gradient", "train_step",
          lambda rng: train_inputs(rng, need_input_grad=False), batch_size=5),
    Check(END_TO_END, END_TO_END, "A tiny CNN trains two epochs on the reference engine (float64)", "end_to_end",
          end_to_end_inputs),
]
CHECKS_BY_NAME = {check.name: check for check in CHECKS}


def checks_of(task_id):
    return [check for check in CHECKS if check.task == task_id]


def points_of(task_id):
    if task_id == END_TO_END:
        return END_TO_END_POINTS
    return next(task.points for task in TASKS if task.id == task_id)


# ---------------------------------------------------------------------------------------------- expected
_EXPECTED = {}


def expected_outputs(check):
    """The solution's outputs for the check's inputs, finite differences replacing the gradients of gradient
    checks. Cached; the solution is the grader's own minicnn."""
    if check.name not in _EXPECTED:
        inputs = check.inputs()
        outputs = runner.decode(runner.encode(runner.PROBES[check.probe](runner.import_resolver, inputs)))
        if check.numerical:
            numerical = check.numerical(inputs)
            outputs = {key: numerical.get(key, value) for key, value in outputs.items()}
        if check.keys:
            outputs = {key: outputs[key] for key in check.keys}
        _EXPECTED[check.name] = (inputs, outputs)
    return _EXPECTED[check.name]


# ---------------------------------------------------------------------------------------------- comparing
def _close(ratio, value):
    return abs(ratio - value) <= 1e-6 * abs(value)


def compare(student, expected):
    """None when they agree, else a short reason."""
    if isinstance(expected, list):
        if not isinstance(student, list) or len(student) != len(expected):
            return f"expected {len(expected)} values, got {_kind(student)}"
        for index, (s, e) in enumerate(zip(student, expected)):
            reason = compare(s, e)
            if reason:
                return f"[{index}]: {reason}"
        return None
    if isinstance(expected, np.ndarray):
        if not isinstance(student, np.ndarray):
            return f"expected an array of shape {expected.shape}, got {_kind(student)}"
        if student.shape != expected.shape:
            hint = " (transposed?)" if student.shape == expected.shape[::-1] else ""
            if student.size == expected.size and not hint:
                hint = " (same size: a reshape in the wrong order?)"
            return f"shape {student.shape}, expected {expected.shape}{hint}"
        if expected.dtype.kind in "iu":
            wrong = int((student != expected).sum())
            return f"{wrong} of {expected.size} entries differ" if wrong else None
        if not np.isfinite(student).all() and np.isfinite(expected).all():
            return ("contains NaN or inf where every expected value is finite: an overflow (exp of a large "
                    "number without subtracting the max?), a log of 0 or a sqrt of a negative number?")
        error = relative_error(student, expected)
        if error < TOLERANCE:
            return None
        with np.errstate(invalid="ignore"):
            worst = np.unravel_index(np.nanargmax(np.abs(student - expected)), expected.shape)
        where = f"[{', '.join(str(int(i)) for i in worst)}]" if expected.ndim else ""
        return (f"relative error {error:.1e}; the largest difference is at {where or 'the value'}: "
                f"{student[worst]:.6g} instead of {expected[worst]:.6g}")
    if isinstance(expected, float) and isinstance(student, (int, float)) and not isinstance(student, bool):
        if not np.isfinite(student) and np.isfinite(expected):
            return f"{student} where {expected:.6g} was expected: an overflow, or a log of 0?"
        return None if abs(student - expected) <= TOLERANCE * max(abs(expected), 1e-12) else \
            f"{student!r}, expected {expected!r}"
    return None if student == expected else f"{_kind(student)}, expected {_kind(expected)}"


def _kind(value):
    if isinstance(value, np.ndarray):
        return f"an array of shape {value.shape}"
    if value is None:
        return "None"
    return repr(value) if isinstance(value, (bool, int, float)) else type(value).__name__


def factor_hint(student, expected, batch_size):
    """'off by a factor of the batch size (3)?' and the like, when student = c * expected for a constant c."""
    if not (isinstance(student, np.ndarray) and isinstance(expected, np.ndarray)) or student.shape != expected.shape:
        return None
    if not np.isfinite(student).all() or not np.any(expected):
        return None
    if not np.any(student):
        return "all zeros: nothing written (or written into a copy?)"
    ratio = float((student * expected).sum() / (expected * expected).sum())
    if relative_error(student, ratio * expected) > 1e-6:
        return None
    if batch_size and _close(ratio, batch_size):
        return f"off by a factor of the batch size ({batch_size})?"
    if batch_size and _close(ratio, 1 / batch_size):
        return f"divided by the batch size ({batch_size}) once too often?"
    if _close(ratio, -1):
        return "the sign is flipped"
    if _close(ratio, 1):
        return None
    return f"off by a constant factor of {ratio:.4g}"


def explain(check, outputs, expected):
    """The failure lines of one check ([] when it passes)."""
    lines = []
    for key, wanted in expected.items():
        if key not in outputs:
            lines.append(f"{check.task}: {key} missing")
            continue
        reason = compare(outputs[key], wanted)
        if reason:
            hint = factor_hint(outputs[key], wanted, check.batch_size)
            lines.append(f"{check.task}: {key} {hint}" if hint else f"{check.task}: {key}: {reason}")
    return lines
