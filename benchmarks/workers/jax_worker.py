"""Benchmark worker for pure JAX: the networks written as functions of a parameter pytree, steps under jax.jit.

    python benchmarks/workers/jax_worker.py

Not through Keras: the model is built from common.SPECS with jax.lax (NHWC convolutions with HWIO kernels,
``reduce_window`` max-pooling), batch statistics and moving averages for BatchNormalization (Keras's momentum and
epsilon), inverted dropout with a key split per step, Adam(1e-3) written out in jnp (Keras's epsilon 1e-7), sparse
cross-entropy from log_softmax, plus the L2 penalties of report004. One training step (forward, gradient, Adam,
new BatchNormalization statistics) is one jitted function, its state donated; prediction is a jitted forward +
softmax returned as a NumPy array (synchronous). Each batch size compiles its own executable at its first call
(reported as first_call_s). Threads: XLA's CPU defaults (one thread per core).
"""
from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import common  # noqa: E402


class JaxBackend:
    def __init__(self):
        import jax
        import jax.numpy as jnp

        self.jax, self.jnp = jax, jnp
        self.state = {}  # model -> (params, batch-norm statistics, Adam state)

    def info(self):
        import jax
        import jaxlib
        import numpy as np

        return {"versions": {"jax": jax.__version__, "jaxlib": getattr(jaxlib, "__version__", "?"),
                             "numpy": np.__version__},
                "threads": {"jax devices": [str(device) for device in jax.devices()],
                            "XLA_FLAGS": os.environ.get("XLA_FLAGS", "(unset: XLA CPU default threads)")},
                "blas": common.blas_info(), "pid": os.getpid()}

    # ------------------------------------------------------------ the network
    def init(self, model):
        """Glorot-uniform kernels, zero biases (Keras's defaults); BatchNormalization gamma 1, beta 0, moving
        mean 0, moving variance 1."""
        import numpy as np

        rng = np.random.default_rng(common.SEED)
        params, stats = [], []
        for layer, shape_in, shape_out in common.shapes(model):
            kind = layer["type"]
            if kind in ("conv", "dense"):
                if kind == "conv":
                    kernel_shape = (layer["kernel"], layer["kernel"], shape_in[2], layer["filters"])
                    fan_in, fan_out = layer["kernel"] ** 2 * shape_in[2], layer["kernel"] ** 2 * layer["filters"]
                else:
                    kernel_shape = (shape_in[0], layer["units"])
                    fan_in, fan_out = kernel_shape
                limit = np.sqrt(6.0 / (fan_in + fan_out))
                params.append({"w": rng.uniform(-limit, limit, kernel_shape).astype(np.float32),
                               "b": np.zeros(shape_out[-1], np.float32)})
                stats.append({})
            elif kind == "batchnorm":
                features = shape_in[-1]
                params.append({"gamma": np.ones(features, np.float32), "beta": np.zeros(features, np.float32)})
                stats.append({"mean": np.zeros(features, np.float32), "var": np.ones(features, np.float32)})
            else:
                params.append({})
                stats.append({})
        return self.jax.device_put(params), self.jax.device_put(stats)

    def forward(self, model, params, stats, x, training, key):
        """Logits, new BatchNormalization statistics."""
        jax, jnp = self.jax, self.jnp
        lax = jax.lax
        new_stats = []
        for index, (layer, _shape_in, _shape_out) in enumerate(common.shapes(model)):
            kind, p, s = layer["type"], params[index], stats[index]
            if kind == "conv":
                x = lax.conv_general_dilated(x, p["w"], (1, 1), layer["padding"].upper(),
                                             dimension_numbers=("NHWC", "HWIO", "NHWC")) + p["b"]
            elif kind == "dense":
                x = x @ p["w"] + p["b"]
            if kind in ("conv", "dense"):
                if layer["activation"] == "relu":
                    x = jnp.maximum(x, 0)
                elif layer["activation"] == "leaky_relu":
                    x = jnp.where(x > 0, x, x * common.LEAKY_SLOPE)
            elif kind == "pool":
                x = lax.reduce_window(x, -jnp.inf, lax.max, (1, 2, 2, 1), (1, 2, 2, 1), "VALID")
            elif kind == "flatten":
                x = x.reshape(x.shape[0], -1)
            elif kind == "batchnorm":
                axes = tuple(range(x.ndim - 1))
                if training:
                    mean = x.mean(axes)
                    var = ((x - mean) ** 2).mean(axes)
                    momentum = common.BN_MOMENTUM
                    s = {"mean": s["mean"] * momentum + mean * (1 - momentum),
                         "var": s["var"] * momentum + var * (1 - momentum)}
                else:
                    mean, var = s["mean"], s["var"]
                scale = p["gamma"] * lax.rsqrt(var + common.BN_EPSILON)
                x = x * scale + (p["beta"] - mean * scale)
            elif kind == "dropout" and training:
                key, sub = jax.random.split(key)
                keep = 1.0 - layer["rate"]
                x = jnp.where(jax.random.bernoulli(sub, keep, x.shape), x / keep, 0)
            new_stats.append(s)
        return x, new_stats

    def loss(self, model, params, stats, x, y, key):
        jnp = self.jnp
        logits, new_stats = self.forward(model, params, stats, x, True, key)
        log_probabilities = self.jax.nn.log_softmax(logits)
        loss = -jnp.take_along_axis(log_probabilities, y[:, None], axis=1).mean()
        for index, (layer, _, _) in enumerate(common.shapes(model)):
            if layer.get("l2"):
                loss = loss + layer["l2"] * (jnp.sum(params[index]["w"] ** 2) + jnp.sum(params[index]["b"] ** 2))
        return loss, new_stats

    def model_state(self, model):
        if model not in self.state:
            params, stats = self.init(model)
            zeros = [self.jax.tree_util.tree_map(self.jnp.zeros_like, params) for _ in range(2)]  # m, v
            self.state[model] = (params, stats, (*zeros, self.jnp.zeros((), self.jnp.int32)),
                                 self.jax.random.PRNGKey(common.SEED))
        return self.state[model]

    # ------------------------------------------------------------ the benchmark's calls
    def train_step(self, model, batch):
        jax, jnp = self.jax, self.jnp
        tree_map = jax.tree_util.tree_map
        rate, beta_1, beta_2, epsilon = 1e-3, 0.9, 0.999, 1e-7
        gradient_of = jax.value_and_grad(lambda p, s, x, y, k: self.loss(model, p, s, x, y, k), has_aux=True)

        def step(params, stats, adam, key, x, y):
            key, sub = jax.random.split(key)
            (loss, stats), grads = gradient_of(params, stats, x, y, sub)
            m, v, t = adam
            t = t + 1
            m = tree_map(lambda m, g: beta_1 * m + (1 - beta_1) * g, m, grads)
            v = tree_map(lambda v, g: beta_2 * v + (1 - beta_2) * g * g, v, grads)
            corrected = rate * jnp.sqrt(1 - beta_2 ** t) / (1 - beta_1 ** t)
            params = tree_map(lambda p, m, v: p - corrected * m / (jnp.sqrt(v) + epsilon), params, m, v)
            return params, stats, (m, v, t), key, loss

        jitted = jax.jit(step, donate_argnums=(0, 1, 2, 3))
        batches = [(jax.device_put(x), jax.device_put(y.astype("int32"))) for x, y in common.random_batches(batch)]

        def train_on(x, y):
            params, stats, adam, key = self.model_state(model)
            params, stats, adam, key, loss = jitted(params, stats, adam, key, x, y)
            self.state[model] = (params, stats, adam, key)
            jax.block_until_ready((params, loss))

        return common.cycling_step(batches, train_on)

    def predictor(self, model, batch):
        import numpy as np

        jax = self.jax
        forward = jax.jit(lambda p, s, x: jax.nn.softmax(self.forward(model, p, s, x, False, None)[0]))
        x = jax.device_put(common.random_batches(batch, count=1)[0][0])

        def predict():
            params, stats, _, _ = self.model_state(model)
            return np.asarray(forward(params, stats, x))

        return predict

    def save(self, model, path):
        raise NotImplementedError("the pure-JAX worker takes no part in the start-up and memory tests")


def main():
    common.serve(lambda: common.make_handlers(JaxBackend()))


if __name__ == "__main__":
    main()
