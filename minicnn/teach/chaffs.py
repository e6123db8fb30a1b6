"""The bug pack: single-bug versions ("chaffs") of the solution regions, each a mistake learners make.

A chaff is one line of one task's region changed: ``old`` (a whole line, or text inside exactly one line of
the region) becomes ``new``. ``minicnn bugs check`` shows that the hidden checks catch every chaff and pass
the solution; ``minicnn bugs run --tests PATH`` grades a student's own tests by the chaffs they catch
(Examplar's wheats and chaffs).
"""
from __future__ import annotations

from dataclasses import dataclass

from minicnn.teach.tasks import TASKS_BY_ID


@dataclass(frozen=True)
class Chaff:
    id: str
    task: str
    description: str
    old: str
    new: str

    @property
    def file(self):
        return TASKS_BY_ID[self.task].file


C = Chaff
CHAFFS = [
    # ReLU
    C("relu-abs", "relu.forward", "ReLU as the absolute value", "np.maximum(x, 0)", "np.abs(x)"),
    C("relu-clipped", "relu.forward", "ReLU clipped at 1 as well (ReLU6-style confusion)",
      "np.maximum(x, 0)", "np.clip(x, 0, 1)"),
    C("relu-mask-ge", "relu.backward", "mask y >= 0: the gradient also flows where the input was negative",
      "y > 0", "y >= 0"),
    C("relu-mask-only", "relu.backward", "returns the mask (the local slope) without multiplying by dy",
      "np.where(y > 0, dy, 0)", "np.where(y > 0, 1.0, 0)"),
    C("relu-times-output", "relu.backward", "multiplies dy by the output y instead of the slope 1",
      "np.where(y > 0, dy, 0)", "np.where(y > 0, dy * y, 0)"),
    # LeakyReLU
    C("leaky-slope-on-positive", "leaky_relu.forward", "the slope applied to the positive side instead of the negative",
      "np.where(positive, x, x * x.dtype.type(negative_slope))",
      "np.where(positive, x * x.dtype.type(negative_slope), x)"),
    C("leaky-plain-relu", "leaky_relu.forward", "a plain ReLU: the negative side zeroed, not scaled",
      "x * x.dtype.type(negative_slope))", "x * 0)"),
    C("leaky-mask-strict", "leaky_relu.forward", "the mask x > 0: the slope at exactly 0 becomes negative_slope",
      "positive = x >= 0", "positive = x > 0"),
    C("leaky-backward-slope-only", "leaky_relu.backward", "returns the slope on the negative side, not slope * dy",
      "dy * dy.dtype.type(negative_slope))", "dy.dtype.type(negative_slope) + 0 * dy)"),
    C("leaky-backward-relu", "leaky_relu.backward", "ReLU's gradient: nothing flows back through the negative side",
      "dy * dy.dtype.type(negative_slope))", "dy * 0)"),
    C("leaky-backward-mask-inverted", "leaky_relu.backward", "the mask inverted: the slope used where x >= 0",
      "np.where(positive, dy,", "np.where(~positive, dy,"),
    # Dense
    C("dense-kernel-transposed", "dense.forward", "uses the kernel transposed (x @ kernel.T)",
      "y = x @ kernel", "y = x @ kernel.T"),
    C("dense-caches-output", "dense.forward", "caches the output instead of the input (backward then uses y)",
      "return y, (x, kernel)", "return y, (y, kernel)"),
    C("dense-bias-subtracted", "dense.forward", "subtracts the bias", "y += bias", "y -= bias"),
    C("dense-dkernel-mean", "dense.backward", "divides dkernel by the batch size (the 1/N is already in dy)",
      "dkernel = x.T @ dy", "dkernel = x.T @ dy / len(x)"),
    C("dense-dbias-mean", "dense.backward", "dbias as the mean over the batch instead of the sum",
      "dbias = dy.sum(axis=0)", "dbias = dy.mean(axis=0)"),
    C("dense-dkernel-transposed", "dense.backward", "dkernel transposed (dy.T @ x)",
      "dkernel = x.T @ dy", "dkernel = dy.T @ x"),
    # Softmax
    C("softmax-no-shift", "softmax.forward", "softmax without the max shift: overflow for large logits",
      "np.exp(x - x.max(axis=-1, keepdims=True))", "np.exp(x)"),
    C("softmax-global-max", "softmax.forward", "subtracts the max of the whole batch, not of each row",
      "x.max(axis=-1, keepdims=True)", "x.max()"),
    C("softmax-batch-axis", "softmax.forward", "normalizes over the batch axis instead of the classes",
      "exp.sum(axis=-1, keepdims=True)", "exp.sum(axis=0, keepdims=True)"),
    C("softmax-diagonal-only", "softmax.backward", "keeps only the Jacobian's diagonal: dx = y (1 - y) dy",
      "return y * (dy - (dy * y).sum(axis=-1, keepdims=True))", "return y * (1 - y) * dy"),
    C("softmax-sum-over-batch", "softmax.backward", "sums dy * y over the whole batch, not each row",
      "(dy * y).sum(axis=-1, keepdims=True)", "(dy * y).sum()"),
    # Cross-entropy
    C("xent-no-shift", "loss.cross_entropy", "cross-entropy without the max shift: overflow for large logits",
      "shifted = logits - logits.max(axis=1, keepdims=True)", "shifted = logits"),
    C("xent-all-rows", "loss.cross_entropy", "subtracts 1 at every row's label columns (dlogits[:, labels])",
      "dlogits[rows, labels] -= 1", "dlogits[:, labels] -= 1"),
    C("xent-no-scale", "loss.cross_entropy", "forgets the scale: the gradient of the sum, not of the mean (1/N)",
      "dlogits *= scale", "dlogits *= 1"),
    C("xent-log-of-softmax", "loss.cross_entropy", "log of the rounded softmax: an infinite loss when it rounds to 0",
      "losses = np.log(total[:, 0]) - shifted[rows, labels]", "losses = -np.log((exp / total)[rows, labels])"),
    # Numerical gradient
    C("numgrad-one-epsilon", "gradcheck.numerical_gradient", "divides the central difference by eps, not 2 eps",
      "(plus - minus) / (2 * epsilon)", "(plus - minus) / epsilon"),
    C("numgrad-no-restore", "gradcheck.numerical_gradient", "never restores the entry: the array drifts",
      "flat[index] = original", "pass"),
    C("numgrad-no-minus-step", "gradcheck.numerical_gradient", "the minus step is forgotten (a forward difference "
      "divided by 2 eps)", "flat[index] = original - epsilon", "flat[index] = original"),
    C("numgrad-return-in-loop", "gradcheck.numerical_gradient", "the return indented into the loop: one entry, "
      "the rest uninitialized", "    return gradient", "        return gradient"),
    # Max-pool
    C("pool-taps-swapped", "maxpool2d.forward", "window taps in (kx, ky) order: argmax decoded wrongly",
      "window_slices(ky, kx, strides, out_h, out_w)", "window_slices(kx, ky, strides, out_h, out_w)"),
    C("pool-forward-no-stride", "maxpool2d.forward", "ignores the stride (windows step by 1)",
      "window_slices(ky, kx, strides, out_h, out_w)", "window_slices(ky, kx, (1, 1), out_h, out_w)"),
    C("pool-ties-last", "maxpool2d.forward", "ties go to the LAST maximum of the window",
      "argmax = windows.argmax(axis=-1)", "argmax = windows.shape[-1] - 1 - windows[..., ::-1].argmax(axis=-1)"),
    C("pool-argmax-over-channels", "maxpool2d.forward", "stacks the taps on the first axis: argmax over channels",
      "windows = np.stack(taps, axis=-1)", "windows = np.stack(taps, axis=0)"),
    C("pool-grad-everywhere", "maxpool2d.backward", "max-pool gradient sent to every cell of the window",
      "+= np.where(argmax == ky * pool_size[1] + kx, dy, 0)", "+= dy"),
    C("pool-assign", "maxpool2d.backward", "assigns instead of adding (=, not +=): overlapping windows and the "
      "existing dx are lost", "dx[:, rows, cols, :] += np.where", "dx[:, rows, cols, :] = np.where"),
    C("pool-column-major", "maxpool2d.backward", "decodes the argmax column-major (kx * PH + ky)",
      "argmax == ky * pool_size[1] + kx", "argmax == kx * pool_size[0] + ky"),
    C("pool-return-in-loop", "maxpool2d.backward", "the return indented into the loop: only the first tap is added",
      "    return dx", "            return dx"),
    C("pool-average", "maxpool2d.backward", "the average-pooling gradient (dy spread evenly over the window)",
      "np.where(argmax == ky * pool_size[1] + kx, dy, 0)", "dy / (pool_size[0] * pool_size[1])"),
    # im2col / col2im
    C("im2col-taps-transposed", "conv2d.im2col", "writes tap (ky, kx) at (kx, ky): the kernel seen transposed",
      "columns[:, :, :, ky, kx, :] = x[:, rows, cols, :]", "columns[:, :, :, kx, ky, :] = x[:, rows, cols, :]"),
    C("im2col-no-stride", "conv2d.im2col", "ignores the stride when cutting windows",
      "window_slices(ky, kx, strides, out_h, out_w)", "window_slices(ky, kx, (1, 1), out_h, out_w)"),
    C("col2im-no-stride", "conv2d.col2im", "stride only in the forward pass: col2im ignores it",
      "window_slices(ky, kx, strides, out_h, out_w)", "window_slices(ky, kx, (1, 1), out_h, out_w)"),
    C("col2im-return-in-loop", "conv2d.col2im", "the return indented into the loop: only the first tap is added",
      "    return dx", "            return dx"),
    C("col2im-assign", "conv2d.col2im", "assigns instead of adding: overlapping windows lose gradient",
      "dx[:, rows, cols, :] += columns", "dx[:, rows, cols, :] = columns"),
    # Conv2D
    C("conv-padding-top", "conv2d.forward", "padding offset: the odd extra row on top/left instead of bottom/right",
      "np.pad(x, ((0, 0), pad_h, pad_w, (0, 0)))", "np.pad(x, ((0, 0), pad_h[::-1], pad_w[::-1], (0, 0)))"),
    C("conv-kernel-transposed", "conv2d.forward", "the kernel transposed (kx, ky) when flattened",
      "kernel_matrix = kernel.reshape(", "kernel_matrix = kernel.transpose(1, 0, 2, 3).reshape("),
    C("conv-kernel-flipped", "conv2d.forward", "a flipped kernel (true convolution; frameworks cross-correlate)",
      "kernel_matrix = kernel.reshape(", "kernel_matrix = kernel[::-1, ::-1].reshape("),
    C("conv-no-bias", "conv2d.forward", "forgets the bias", "columns @ kernel_matrix + bias", "columns @ kernel_matrix"),
    C("conv-dkernel-mean", "conv2d.backward", "divides dkernel by the batch size (the 1/N is already in dy)",
      "dkernel = (columns.T @ dy_matrix).reshape(kernel.shape)",
      "dkernel = (columns.T @ dy_matrix).reshape(kernel.shape) / len(dy)"),
    C("conv-dkernel-batch-sum", "conv2d.backward", "dkernel multiplied by the batch size (summed once per sample)",
      "dkernel = (columns.T @ dy_matrix).reshape(kernel.shape)",
      "dkernel = (columns.T @ dy_matrix).reshape(kernel.shape) * len(dy)"),
    C("conv-crop-offset", "conv2d.backward", "cuts the padding off at the wrong side (the top offset ignored)",
      "dx = dx_padded[:, pad_h[0]:pad_h[0] + height, pad_w[0]:pad_w[0] + width, :]",
      "dx = dx_padded[:, :height, :width, :]"),
    C("conv-dx-kernel-transposed", "conv2d.backward", "the kernel transposed (kx, ky) in the input gradient",
      "dcolumns = dy_matrix @ kernel.reshape(", "dcolumns = dy_matrix @ kernel.transpose(1, 0, 2, 3).reshape("),
    C("conv-dbias-partial", "conv2d.backward", "dbias summed over the batch only, not over the pixels",
      "dbias = dy_matrix.sum(axis=0)", "dbias = dy.sum(axis=0).mean(axis=(0, 1))"),
    C("conv-backward-no-stride", "conv2d.backward", "stride handled in the forward pass only: backward uses 1",
      "(kernel_h, kernel_w), strides, out_h, out_w)", "(kernel_h, kernel_w), (1, 1), out_h, out_w)"),
    # Dropout
    C("dropout-no-rescale", "dropout.forward", "dropout not rescaled by 1/(1-rate): the expected output shrinks",
      "np.where(keep_mask, x / keep,", "np.where(keep_mask, x,"),
    C("dropout-scale-by-rate", "dropout.forward", "rescaled by 1/rate instead of 1/(1-rate)",
      "keep = x.dtype.type(1.0 - rate)", "keep = x.dtype.type(rate)"),
    C("dropout-mask-inverted", "dropout.forward", "keeps the dropped entries and drops the kept ones",
      "np.where(keep_mask, x / keep,", "np.where(~keep_mask, x / keep,"),
    C("dropout-at-inference", "dropout.forward", "the mask applied at inference too (the switch ignores training)",
      "if not training or self.rate == 0:", "if self.rate == 0:"),
    C("dropout-scaled-at-inference", "dropout.forward", "old-style dropout: inference scaled by (1 - rate) as well",
      "return x, None", "return x * (1 - self.rate), None"),
    C("dropout-same-mask", "dropout.forward", "the call counter never advances: the same mask at every step",
      "self.calls += 1", "pass"),
    C("dropout-backward-no-rescale", "dropout.backward", "backward not rescaled by 1/(1-rate) (forward is)",
      "np.where(cache, dy / keep,", "np.where(cache, dy,"),
    C("dropout-backward-everywhere", "dropout.backward", "the gradient flows to the dropped entries too",
      "return np.where(cache, dy / keep, dy.dtype.type(0))", "return dy / keep"),
    C("dropout-backward-by-rate", "dropout.backward", "backward rescaled by 1/rate instead of 1/(1-rate)",
      "keep = dy.dtype.type(1.0 - rate)", "keep = dy.dtype.type(rate)"),
    # BatchNormalization
    C("bn-no-mean-term", "batch_normalization.backward", "BatchNormalization backward without the mean term "
      "(- dbeta / M)", "dx -= dbeta / count", "pass  #"),
    C("bn-no-variance-term", "batch_normalization.backward", "BatchNormalization backward without the variance "
      "term (- xhat * dgamma / M)", "dx *= -dgamma / count", "dx *= 0"),
    C("bn-statistics-constant", "batch_normalization.backward", "in training, the batch statistics treated as "
      "constants (the inference gradient dy * gamma * inv)", "if not training:", "if True:"),
    C("bn-count-batch", "batch_normalization.backward", "M taken as the batch size N, not N*H*W, after Conv2D",
      "count = dy.dtype.type(len(rows))", "count = dy.dtype.type(len(dy))"),
    C("bn-dgamma-no-xhat", "batch_normalization.backward", "dgamma summed from dy alone (forgets xhat)",
      'dgamma = np.einsum("ij,ij->j", dy_rows, xhat)', "dgamma = dy_rows.sum(axis=0)"),
    C("bn-forgets-gamma", "batch_normalization.backward", "dx forgets gamma (only inv)",
      "scale = gamma * inv if gamma is not None else inv", "scale = inv"),
    C("bn-dbeta-mean", "batch_normalization.backward", "dbeta as the mean over the rows instead of the sum",
      "dbeta = dy_rows.sum(axis=0)", "dbeta = dy_rows.mean(axis=0)"),
    # Adam
    C("adam-eps-in-sqrt", "adam.update", "epsilon inside the square root", "(np.sqrt(v) + epsilon)",
      "np.sqrt(v + epsilon)"),
    C("adam-rebinds-m", "adam.update", "m = ... makes a new array: the optimizer's state is never updated in place",
      "m += (grads - m) * one_minus_beta_1", "m = m + (grads - m) * one_minus_beta_1"),
    C("adam-v-of-g", "adam.update", "v averages g instead of g * g", "v += (grads * grads - v)", "v += (grads - v)"),
    C("adam-no-bias-correction", "adam.step_size", "Adam without bias correction (alpha = learning_rate)",
      "alpha = self.learning_rate * math.sqrt(1 - self.beta_2 ** step) / (1 - self.beta_1 ** step)",
      "alpha = self.learning_rate"),
    C("adam-t-from-zero", "adam.step_size", "t counts from 0: the first step divides by zero",
      "step = self.iterations + 1", "step = self.iterations"),
    C("adam-betas-swapped", "adam.step_size", "beta_1 and beta_2 swapped in the bias correction",
      "math.sqrt(1 - self.beta_2 ** step) / (1 - self.beta_1 ** step)",
      "math.sqrt(1 - self.beta_1 ** step) / (1 - self.beta_2 ** step)"),
    # The training step
    C("step-backward-forward-order", "train.step", "backward through the layers in forward order",
      "for index in range(len(self.logit_layers) - 1, -1, -1):", "for index in range(len(self.logit_layers)):"),
    C("step-inference-forward", "train.step", "forward in inference mode (training=False)",
      "x, cache = layer.forward(x, True)", "x, cache = layer.forward(x, False)"),
    C("step-no-inner-input-grad", "train.step", "inner layers asked for no input gradient (they return None)",
      "need_input_grad=index > 0 or need_input_grad)", "need_input_grad=need_input_grad)"),
    C("step-argmax-batch-axis", "train.step", "accuracy from the argmax over the batch axis",
      "logits.argmax(axis=1)", "logits.argmax(axis=0)"),
    C("step-ignores-scale", "train.step", "ignores the scale: the gradient of the summed loss, not the mean",
      "softmax_cross_entropy(logits, y, scale)", "softmax_cross_entropy(logits, y, 1.0)"),
]
CHAFFS_BY_ID = {chaff.id: chaff for chaff in CHAFFS}


def chaffs_of(task_id):
    return [chaff for chaff in CHAFFS if chaff.task == task_id]
