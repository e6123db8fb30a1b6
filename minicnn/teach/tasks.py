"""The exercises: every solution region marked in the real code, from easy to hard.

A region sits between two comment lines in the package's own files::

    # BEGIN SOLUTION task=conv2d.backward
    ...the lines a student writes...
    # END SOLUTION

``minicnn assign`` replaces it with ``raise NotImplementedError("task conv2d.backward: <hint>")`` in the
student copy. ``tests`` names the hidden checks of minicnn/teach/checks.py that grade the task; ``needs`` the
tasks its code calls (a stub there makes this task fail too, and the grader says so).
"""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Task:
    id: str
    file: str
    title: str
    hint: str
    difficulty: str  # easy | medium | hard
    points: int
    tests: tuple
    needs: tuple = field(default=())

    @property
    def module(self):
        return self.file[:-3].replace("/", ".")


TASKS = [
    Task("relu.forward", "minicnn/layers/relu.py", "ReLU forward",
         "y = max(x, 0) elementwise; return (y, cache) where backward only needs y", "easy", 2,
         ("relu.forward",)),
    Task("relu.backward", "minicnn/layers/relu.py", "ReLU backward",
         "dx = dy where the forward output y was > 0, else 0 (0 at exactly 0); keep dy's dtype", "easy", 2,
         ("relu.backward", "relu.backward.gradcheck")),
    Task("leaky_relu.forward", "minicnn/layers/leaky_relu.py", "LeakyReLU forward",
         "y = x where x >= 0, negative_slope * x elsewhere; the cache is the mask x >= 0 (a bool array)", "easy", 2,
         ("leaky_relu.forward",)),
    Task("leaky_relu.backward", "minicnn/layers/leaky_relu.py", "LeakyReLU backward",
         "dx = dy where the mask (x >= 0) holds, negative_slope * dy elsewhere", "easy", 2,
         ("leaky_relu.backward", "leaky_relu.backward.gradcheck")),
    Task("dense.forward", "minicnn/layers/dense.py", "Dense forward",
         "y = x @ kernel + bias; the cache is the tuple (x, kernel)", "easy", 2, ("dense.forward",)),
    Task("dense.backward", "minicnn/layers/dense.py", "Dense backward",
         "dkernel = x.T @ dy, dbias = dy summed over the batch, dx = dy @ kernel.T (None unless need_input_grad)",
         "easy", 3, ("dense.backward", "dense.backward.gradcheck")),
    Task("softmax.forward", "minicnn/layers/softmax.py", "Softmax forward, numerically stable",
         "subtract each row's max before exp, divide by the row sum; the cache is y", "easy", 2,
         ("softmax.forward", "softmax.forward.large")),
    Task("softmax.backward", "minicnn/layers/softmax.py", "Softmax backward",
         "dx = y * (dy - sum over the row of dy * y)", "medium", 3,
         ("softmax.backward", "softmax.backward.gradcheck")),
    Task("loss.cross_entropy", "minicnn/losses.py", "Softmax cross-entropy with integer labels (stable)",
         "loss = logsumexp(z) - z[label] with the max shift; dlogits = (softmax - onehot) * scale; return "
         "(float sum of losses, dlogits in the logits' dtype)", "medium", 3,
         ("loss.values", "loss.large_logits", "loss.gradcheck")),
    Task("gradcheck.numerical_gradient", "minicnn/gradcheck.py", "The numerical gradient (central differences)",
         "for each index: perturb array.flat[index] by +eps and -eps, call loss_fn(), restore the value; "
         "gradient = (plus - minus) / (2 eps)", "easy", 2, ("gradcheck.numerical_gradient",)),
    Task("maxpool2d.forward", "minicnn/layers/maxpool2d.py", "Max-pool forward: window maxima and their argmax",
         "one strided slice per window tap (window_slices), stack them on a last axis, argmax over it (the "
         "first maximum wins ties); return (y, argmax) with argmax = ky * PW + kx", "medium", 3,
         ("maxpool2d.forward", "maxpool2d.forward.overlap")),
    Task("maxpool2d.backward", "minicnn/layers/maxpool2d.py", "Max-pool backward: route the gradient to the maxima",
         "for every tap (ky, kx): dx[window slices] += dy where argmax == ky * PW + kx; return dx", "medium", 3,
         ("maxpool2d.backward", "maxpool2d.backward.overlap", "maxpool2d.backward.gradcheck")),
    Task("conv2d.im2col", "minicnn/layers/conv2d.py", "im2col: every window as a row",
         "columns[n, oy, ox, ky, kx, c] = x[n, oy*SH + ky, ox*SW + kx, c] (window_slices helps), reshaped to "
         "(N*OH*OW, KH*KW*C)", "medium", 3, ("conv2d.im2col", "conv2d.im2col.strided")),
    Task("conv2d.col2im", "minicnn/layers/conv2d.py", "col2im: the adjoint of im2col",
         "ADD each row of columns back onto its window of dx (+=, windows overlap); return dx", "medium", 3,
         ("conv2d.col2im", "conv2d.col2im.strided")),
    Task("conv2d.forward", "minicnn/layers/conv2d.py", "Conv2D forward through im2col",
         "pad for 'same' (window_output_size gives the padding), im2col, one matrix product with the kernel as "
         "(KH*KW*C, F), add bias; cache = (x_padded, columns, kernel, strides, pad_h, pad_w)", "hard", 4,
         ("conv2d.forward", "conv2d.forward.strided_same"), ("conv2d.im2col",)),
    Task("conv2d.backward", "minicnn/layers/conv2d.py", "Conv2D backward",
         "dbias = dy summed over (N, OH, OW); dkernel = columns.T @ dy as (N*OH*OW, F); dcolumns = dy @ "
         "kernel_matrix.T, col2im onto zeros like x_padded, then cut the padding off", "hard", 5,
         ("conv2d.backward", "conv2d.backward.strided_same", "conv2d.backward.gradcheck"), ("conv2d.col2im",)),
    Task("dropout.forward", "minicnn/layers/dropout.py", "Dropout forward (inverted dropout) and its switch",
         "dropout_forward: y = x / (1 - rate) where the keep mask is True, 0 elsewhere, cache = the mask; "
         "Dropout.forward: the identity (cache None) at inference or rate 0, else draw "
         "dropout_mask(x.shape, rate, seed, calls), count the call, apply dropout_forward", "medium", 3,
         ("dropout.forward", "dropout.forward.layer")),
    Task("dropout.backward", "minicnn/layers/dropout.py", "Dropout backward",
         "dx = dy / (1 - rate) where the cached keep mask is True, 0 elsewhere", "easy", 2,
         ("dropout.backward", "dropout.backward.gradcheck")),
    Task("batch_normalization.backward", "minicnn/layers/batch_normalization.py", "BatchNormalization backward",
         "see rows (M, F) = x.reshape(-1, F); xhat = (rows - mean) * inv; dbeta = sum(dy), dgamma = sum(dy * xhat) "
         "over rows; None for dx unless need_input_grad; at inference dx = dy * gamma * inv; in training "
         "dx = gamma * inv * (dy - dbeta / M - xhat * dgamma / M) (gamma None means 1)", "hard", 5,
         ("batch_normalization.backward", "batch_normalization.backward.conv",
          "batch_normalization.backward.gradcheck", "batch_normalization.backward.inference",
          "batch_normalization.backward.no_scale")),
    Task("adam.update", "minicnn/kernels/optim.py", "Adam, Keras's epsilon-hat form, in place",
         "m += (g - m) * (1 - beta_1); v += (g*g - v) * (1 - beta_2); flush subnormals of m and v; "
         "params -= alpha * m / (sqrt(v) + epsilon) (alpha already holds the bias correction)", "medium", 3,
         ("adam.update", "adam.steps")),
    Task("adam.step_size", "minicnn/optimizers/adam.py", "Adam's step size with the bias correction",
         "step = iterations + 1 (t counts from 1); alpha = learning_rate * sqrt(1 - beta_2**step) / "
         "(1 - beta_1**step)", "easy", 2, ("adam.step_size", "adam.step_size.later")),
    Task("train.step", "minicnn/reference.py", "The reference training step: forward, loss, backward",
         "forward every logit layer (training=True) keeping caches; softmax_cross_entropy(logits, y, scale); "
         "count correct argmax; backward in reverse order into grads[i] (need_input_grad for index > 0 or if "
         "asked); return (loss_sum, correct, dx)", "medium", 4, ("train.step", "train.step.no_input_grad")),
]
TASKS_BY_ID = {task.id: task for task in TASKS}

# The hidden check that trains a tiny CNN end to end on the reference engine: graded on its own, it needs
# every task that the reference engine runs.
END_TO_END = "end_to_end.train"
END_TO_END_POINTS = 4


def select(task_ids=None):
    """The tasks with these ids (all of them for None), in TASKS order; a clear error for an unknown id."""
    if not task_ids:
        return list(TASKS)
    unknown = [task_id for task_id in task_ids if task_id not in TASKS_BY_ID]
    if unknown:
        raise ValueError(f"unknown task(s) {', '.join(unknown)}; the tasks are: {', '.join(TASKS_BY_ID)}")
    return [task for task in TASKS if task.id in set(task_ids)]
