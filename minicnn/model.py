"""Sequential: a stack of layers with the habits of ``keras.Sequential``.

    model = Sequential([Conv2D(64, 3, activation="relu"), MaxPool2D(2), Flatten(), Dense(10, activation="softmax")],
                       input_shape=(28, 28, 1))
    model.compile(optimizer=Adam(1e-3), loss="sparse_categorical_crossentropy")
    model.summary()
    history = model.fit(x_train, y_train, epochs=5, batch_size=32, validation_split=0.1)
    loss, accuracy = model.evaluate(x_test, y_test)
    probabilities = model.predict(x_test)
    model.save("digits.npz");  same = minicnn.load_model("digits.npz")

Two engines run the same model, chosen with ``Sequential(..., engine=...)`` (or ``model.engine = ...``, or
MINICNN_ENGINE for a whole process):

* ``"fast"`` (the default): minicnn/fast/, a plan of fused steps run with Numba kernels over several threads;
  ``model.plan(batch_size)`` shows which algorithm runs for each layer and why.
* ``"reference"``: minicnn/reference.py, every layer's own forward/backward functions in plain NumPy, in order.
* ``"twins"``: the fast engine's plan with every Numba kernel replaced by its NumPy twin (to check and read it).

All three give the same numbers to float rounding (the tests check it). Parameters live in one flat buffer
(``flat_params``) and their gradients in another (``flat_grads``); each Parameter's ``.value``/``.grad`` is a
view into them, so the optimizer updates everything in one call.
"""
from __future__ import annotations

import math
import numbers
import os

import numpy as np

from minicnn import serialization
from minicnn.errors import InputError, LabelError, ModelFileError, NonFiniteGradientError, NonFiniteLossError, ShapeError
from minicnn.fast import startup
from minicnn.fast.engine import FastEngine
from minicnn.history import EpochProgress, History
from minicnn.layers import ACTIVATION_LAYERS, LAYER_CLASSES, Softmax
from minicnn.losses import LOSSES, softmax_cross_entropy
from minicnn.optimizers import OPTIMIZER_CLASSES
from minicnn.optimizers import get as get_optimizer
from minicnn.reference import ReferenceEngine

ENGINES = {"fast": lambda layers, threads: FastEngine(layers, threads, kernels="numba"),
           "reference": lambda layers, threads: ReferenceEngine(layers, threads),
           "twins": lambda layers, threads: FastEngine(layers, threads, kernels="numpy")}


def whole_number(value, name, minimum, default=None):
    """``value`` as an int >= ``minimum`` (None: ``default``), else a ValueError naming the argument. Accepts Python
    and NumPy integers only: ``epochs=2.5`` or ``batch_size="32"`` is refused, not rounded."""
    if type(value) is int and value >= minimum:  # (the usual case, first: every predict call passes here)
        return value
    if value is None and default is not None:
        return default
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(f"`{name}` must be an integer >= {minimum}, got {value!r} ({type(value).__name__})")
    if value < minimum:
        raise ValueError(f"`{name}` must be an integer >= {minimum}, got {value!r}")
    return int(value)


def check_finite_inputs(x, what="inputs"):
    """Refuse NaN or infinite values in ``x`` (a float array) with an InputError that says where the first one is:
    one NaN pixel would otherwise turn every weight into NaN, or make predict/evaluate return NaN.

    First the sum of the squares (one BLAS call, no temporary array; 2.4 us for one image against 4.2 for
    ``np.isfinite(x).all()``, half the time on a batch): finite when every value is; only when it is not (a bad
    value, or values so large that their squares overflow) is every value looked at."""
    flat = x.reshape(-1)
    if x.size and not math.isfinite(np.dot(flat, flat)) and not np.isfinite(x).all():
        bad = np.argwhere(~np.isfinite(x))
        first = tuple(int(i) for i in bad[0])
        raise InputError(f"the {what} contain {len(bad)} NaN or infinite value(s), the first at index {first} "
                         f"(image {first[0]}): {x[first]}. Clean or drop those images (np.isfinite(x).all(axis=(1, 2, 3))"
                         " tells which) before training or predicting.")


def unpack_validation_data(validation_data):
    """(x_val, y_val) from ``validation_data``, as Keras unpacks it; anything else is a ValueError."""
    if isinstance(validation_data, list):
        validation_data = tuple(validation_data)
    if not isinstance(validation_data, tuple) or len(validation_data) not in (2, 3):
        found = f"a tuple of {len(validation_data)}" if isinstance(validation_data, tuple) else type(validation_data).__name__
        raise ValueError("`validation_data` is expected to be in format `(x_val, y_val)` (minicnn takes no "
                         f"sample weights), found: {found}")
    if len(validation_data) == 3 and validation_data[2] is not None:
        raise ValueError("`validation_data` with sample weights (x_val, y_val, sample_weight) is not supported: "
                         "pass (x_val, y_val)")
    return validation_data[0], validation_data[1]


def default_engine():
    """MINICNN_ENGINE if set (fast, reference or twins), else "fast"."""
    value = os.environ.get("MINICNN_ENGINE", "").strip().lower() or "fast"
    if value not in ENGINES:
        raise ValueError(f"MINICNN_ENGINE={value!r} is not an engine: use one of {sorted(ENGINES)}")
    return value


class Sequential:
    def __init__(self, layers=(), input_shape=None, dtype="float32", seed=0, name="sequential", engine=None,
                 threads=None):
        """``engine``: "fast" (default, or MINICNN_ENGINE), "reference" or "twins" (see the module docstring).
        ``threads``: how many threads the fast engine splits each batch over (default min(2, cores), or
        MINICNN_THREADS). Neither changes the results beyond float rounding; both can be changed at any time
        (``model.engine = "reference"``)."""
        self.name = name
        self._engine_name = default_engine() if engine is None else engine
        if self._engine_name not in ENGINES:
            raise ValueError(f"engine must be one of {sorted(ENGINES)}, got {engine!r}")
        self._threads = threads
        self._engine = None
        self.dtype = np.dtype(dtype)
        if self.dtype not in (np.float32, np.float64):
            raise ValueError(f"dtype must be float32 or float64, got {dtype!r}")
        self.seed = seed
        self.layers = []
        self.input_shape = tuple(input_shape) if input_shape is not None else None
        self.built = False
        self.optimizer = None
        self.loss = "sparse_categorical_crossentropy"
        self.flat_params = None
        self.flat_grads = None
        self.metadata = None  # what a saved model's file says of its training (see load_model)
        self.resume_point = None  # a checkpoint's record, when loaded from one: where fit continues (see fit)
        self.training_progress = None  # where fit is (epoch, step, ...): what save_checkpoint saves
        self.stop_training = False  # a callback sets it to stop fit after the epoch, as in Keras
        for layer in layers:
            self.add(layer)
        if self.input_shape is not None:
            self.build()

    # ------------------------------------------------------------------ structure
    def add(self, layer):
        """Append a layer. ``activation="relu"``/``"leaky_relu"``/``"softmax"`` on a layer appends that activation layer too."""
        if self.built:
            raise RuntimeError("add layers before the model is built (before fit, predict or build)")
        if self.input_shape is None and getattr(layer, "requested_input_shape", None) is not None:
            self.input_shape = layer.requested_input_shape
        activation = getattr(layer, "activation", None)
        self._append(layer)
        if activation is not None:
            layer.activation = None
            if activation not in ACTIVATION_LAYERS:
                raise ValueError(f"unknown activation {activation!r}; use one of {sorted(ACTIVATION_LAYERS)}")
            self._append(ACTIVATION_LAYERS[activation]())

    def _append(self, layer):
        if layer.name is None:
            base = getattr(type(layer), "default_name", None) or type(layer).__name__.lower()
            taken = {existing.name for existing in self.layers}
            layer.name, count = base, 0
            while layer.name in taken:
                count += 1
                layer.name = f"{base}_{count}"
        self.layers.append(layer)

    def build(self, input_shape=None):
        """Create every layer's parameters for inputs of ``input_shape`` (one sample, e.g. (28, 28, 1))."""
        if input_shape is not None:
            self.input_shape = tuple(int(d) for d in input_shape)
        if self.input_shape is None:
            raise ShapeError("the model does not know its input shape: pass input_shape=(28, 28, 1) to "
                             "Sequential or to its first layer, or call fit/predict with data")
        if not self.layers:
            raise ShapeError("the model has no layers")
        rng = np.random.default_rng(self.seed)
        shape = self.input_shape
        for index, layer in enumerate(self.layers):
            try:
                shape = layer.build(shape, self.dtype, rng)
            except ShapeError as error:
                raise ShapeError(f"layer {index} ({layer.name}): {error}") from None
        self._pack_parameters()
        self.built = True
        self._make_engine()
        if self.optimizer is not None:
            self.optimizer.build(self.flat_params)
        return self

    def _make_engine(self):
        if self.built:
            self._engine = ENGINES[self._engine_name](self.layers, self._threads)

    @property
    def engine(self):
        """The engine that runs the model: "fast", "reference" or "twins". Assign to switch."""
        return self._engine_name

    @engine.setter
    def engine(self, name):
        if name not in ENGINES:
            raise ValueError(f"engine must be one of {sorted(ENGINES)}, got {name!r}")
        self._engine_name = name
        self._make_engine()

    @property
    def threads(self):
        return self._threads

    @threads.setter
    def threads(self, threads):
        self._threads = threads
        self._make_engine()

    def _pack_parameters(self):
        """Move every parameter into one flat buffer (and every gradient into another), leaving views behind."""
        parameters = self.parameters()
        total = sum(p.size for p in parameters)
        self.flat_params = np.zeros(total, dtype=self.dtype)
        self.flat_grads = np.zeros(total, dtype=self.dtype)
        offset = 0
        for parameter in parameters:
            view = self.flat_params[offset:offset + parameter.size].reshape(parameter.shape)
            view[...] = parameter.value
            parameter.value = view
            parameter.grad = self.flat_grads[offset:offset + parameter.size].reshape(parameter.shape)
            offset += parameter.size
        self._own_grads = [[p.grad for p in layer.parameters()] for layer in self.layers]

    def parameters(self):
        """Every trainable Parameter, layer by layer."""
        return [p for layer in self.layers for p in layer.parameters()]

    def states(self):
        """Every non-trainable array (BatchNormalization's moving statistics), layer by layer, as Parameters."""
        return [s for layer in self.layers for s in layer.state()]

    def weights(self):
        """Every Parameter and state, in Keras's order: layer by layer, each layer's trainable ones first."""
        return [w for layer in self.layers for w in (*layer.parameters(), *layer.state())]

    def regularization_penalty(self):
        """The sum of every parameter's regularization penalty (kernel_regularizer=, bias_regularizer=): what Keras
        adds to the loss (``model.losses``). 0.0 without regularizers."""
        return float(sum(p.regularizer(p.value) for p in self.parameters() if p.regularizer is not None))

    def count_params(self):
        """Trainable and non-trainable numbers (as Keras's count_params)."""
        return sum(p.size for p in self.weights())

    def count_trainable_params(self):
        return sum(p.size for p in self.parameters())

    @property
    def output_shape(self):
        return self.layers[-1].output_shape if self.built else None

    @property
    def ends_with_softmax(self):
        return isinstance(self.layers[-1], Softmax)

    @property
    def num_classes(self):
        return self.output_shape[-1]

    def get_weights(self):
        """Copies of every array, layer by layer in Keras's order: each layer's parameters, then its non-trainable
        state (kernel, bias, ..., gamma, beta, moving_mean, moving_variance, ...): what ``keras_model.get_weights()``
        lists for the same architecture."""
        return [p.value.copy() for p in self.weights()]

    def set_weights(self, weights):
        parameters = self.weights()
        if len(weights) != len(parameters):
            raise ShapeError(f"set_weights got {len(weights)} arrays, the model has {len(parameters)} parameters "
                             f"({len(self.parameters())} trainable, {len(self.states())} non-trainable)")
        for parameter, array in zip(parameters, weights):
            array = np.asarray(array)
            if array.shape != parameter.shape:
                raise ShapeError(f"weight for {parameter.name} has shape {array.shape}, expected {parameter.shape}")
            parameter.value[...] = array

    def get_config(self):
        return {"name": self.name, "dtype": self.dtype.name, "seed": self.seed,
                "input_shape": list(self.input_shape) if self.input_shape else None, "loss": self.loss,
                "engine": self.engine, "threads": self.threads,
                "layers": [{"class": type(layer).__name__, "config": layer.get_config()} for layer in self.layers]}

    @classmethod
    def from_config(cls, config, dtype=None):
        """A built model from ``get_config()`` (only layer classes minicnn knows are created, by name)."""
        layers = []
        for entry in config["layers"]:
            layer_class = LAYER_CLASSES.get(entry.get("class"))
            if layer_class is None:
                raise ModelFileError(f"unknown layer class {entry.get('class')!r} in the architecture; "
                                     f"minicnn knows {sorted(LAYER_CLASSES)}")
            layers.append(layer_class(**entry["config"]))
        model = cls(layers, input_shape=config["input_shape"], dtype=dtype or config["dtype"],
                    seed=config.get("seed", 0), name=config.get("name", "sequential"),
                    engine=config.get("engine"), threads=config.get("threads"))
        model.loss = config.get("loss", model.loss)
        return model

    def clone(self, dtype=None):
        """A new model with the same layers, settings and weights, optionally in another dtype (e.g. float64)."""
        copy = Sequential.from_config(self.get_config(), dtype=dtype)
        copy.set_weights(self.get_weights())
        return copy

    # ------------------------------------------------------------------ running
    def compile(self, optimizer="adam", loss="sparse_categorical_crossentropy", metrics=("accuracy",)):
        """Choose the optimizer and loss. Metrics: accuracy is always reported."""
        if loss not in LOSSES:
            raise ValueError(f"loss must be one of {LOSSES}, got {loss!r}")
        self.loss = loss
        self.optimizer = get_optimizer(optimizer)
        if self.built:
            self.optimizer.build(self.flat_params)
        return self

    def prepare_inputs(self, x):
        """x checked against the model's input shape, as a C-contiguous array of the model's dtype (what
        fit/evaluate/predict do first; a grayscale batch without a channel axis gets one)."""
        x = np.asarray(x)
        if not self.built:
            if self.input_shape is None and x.ndim >= 2:
                self.input_shape = x.shape[1:] if x.ndim != 3 else (*x.shape[1:], 1)
            self.build()
        expected = tuple(self.input_shape)
        if x.ndim == len(expected) and expected[-1] == 1 and x.shape[1:] == expected[:-1]:
            x = x[..., None]  # grayscale images without a channel axis: (N, 28, 28) -> (N, 28, 28, 1)
        if x.shape[1:] != expected:
            raise ShapeError(f"the model expects inputs of shape (batch, {', '.join(map(str, expected))}), "
                             f"got {x.shape}")
        if x.dtype.kind not in "biuf":
            raise InputError(f"inputs must be real numbers (bool, integer or float arrays), got dtype {x.dtype}")
        x = np.ascontiguousarray(x, dtype=self.dtype)
        check_finite_inputs(x)
        return x

    def prepare_labels(self, y, count):
        """y checked against the model's classes: int64 (N,) class indices, or (N, K) one-hot rows."""
        y = np.asarray(y)
        classes = self.num_classes
        if len(y) != count:
            raise LabelError(f"got {count} inputs but {len(y)} labels")
        if self.loss == "categorical_crossentropy" or y.ndim == 2:
            if y.ndim != 2 or y.shape[1] != classes:
                raise LabelError(f"one-hot labels must have shape (N, {classes}), got {y.shape}")
            if y.dtype.kind not in "biuf":
                raise LabelError(f"one-hot labels must be real numbers, got dtype {y.dtype}")
            y = np.ascontiguousarray(y, dtype=self.dtype)
            bad = ~np.isfinite(y).all(axis=1) | (y < 0).any(axis=1) | (np.abs(y.sum(axis=1) - 1) > 1e-3)
            if bad.any():
                row = int(np.argmax(bad))
                raise LabelError(f"one-hot labels must be finite, >= 0 and sum to 1 in each row; {int(bad.sum())} "
                                 f"row(s) do not, the first is row {row}: {y[row]}")
            return y
        if y.ndim != 1:
            raise LabelError(f"integer labels must have shape (N,), got {y.shape}")
        if y.dtype.kind not in "biuf":
            raise LabelError(f"labels must be class indices (integers), got dtype {y.dtype}")
        if not np.issubdtype(y.dtype, np.integer):
            if not np.all(np.mod(y, 1) == 0):
                raise LabelError("labels must be whole numbers (class indices)")
        if count and (y.min() < 0 or y.max() >= classes):
            raise LabelError(f"labels must be in 0..{classes - 1} for a model with {classes} outputs; found values "
                             f"from {y.min()} to {y.max()}")
        return y.astype(np.int64)

    def logit_layers(self):
        """The layers that produce logits: all but a final Softmax (fused into the loss)."""
        return self.layers[:-1] if self.ends_with_softmax else self.layers

    def forward(self, x, training=False):
        """The model's output for a batch x (already prepared): probabilities if it ends in Softmax."""
        return self._engine.outputs(x)

    def activations(self, x):
        """[(layer name, output)] for every layer, for a batch x: what each layer computed (feature maps)."""
        x = self.prepare_inputs(x)
        outputs = []
        for layer in self.layers:
            x, _ = layer.forward(x, False)
            outputs.append((layer.name, x))
        return outputs

    def loss_and_gradients(self, x, y, grads=None, scale=None, need_input_grad=False):
        """Forward and backward on one batch (x prepared, y prepared labels).

        Writes every parameter gradient of ``scale * sum of losses`` into ``grads`` (a list with one list of arrays
        per layer, shaped like ``layer.parameters()``; default: the parameters' own ``.grad`` views). scale defaults
        to 1/len(x), i.e. the gradient of the mean loss. Returns (sum of losses, number of correct predictions,
        dLoss/dx or None): the input gradient is only computed when ``need_input_grad`` is True. The sum of losses
        includes len(x) times the regularization penalty, so that it divided by len(x) is Keras's loss (the mean
        loss + the penalties), and the gradients are those of ``scale`` times it.
        """
        if grads is None:
            grads = self._own_grads
        if scale is None:
            scale = 1.0 / len(x)
        loss_sum, correct, dx = self._engine.loss_and_gradients(x, y, grads, scale, need_input_grad)
        penalty = self.add_penalty_gradients(grads, scale * len(x))
        return loss_sum + penalty * len(x), correct, dx

    def add_penalty_gradients(self, grads, factor=1.0):
        """Add ``factor`` times the gradient of every regularization penalty to ``grads`` (one list of arrays per
        layer, as ``loss_and_gradients``); return the total penalty. The one place penalties enter training: after
        the engine's gradients, the same for every engine."""
        penalty = 0.0
        for layer, layer_grads in zip(self.layers, grads):
            for parameter, grad in zip(layer.parameters(), layer_grads):
                if parameter.regularizer is not None:
                    penalty += float(parameter.regularizer(parameter.value))
                    grad += grad.dtype.type(factor) * parameter.regularizer.gradient(parameter.value)
        return penalty

    def train_step(self, x, y):
        """One forward pass, backward pass and optimizer update on a prepared batch. Returns (mean loss including
        the regularization penalties, as Keras reports it; correct predictions).

        Raises NonFiniteLossError, before updating anything, when the loss is NaN or infinite."""
        loss_sum, correct = self._engine.gradients(x, y, self._own_grads, self.flat_grads)
        mean_loss = loss_sum / len(x) + self.add_penalty_gradients(self._own_grads)
        if not math.isfinite(mean_loss):
            raise NonFiniteLossError(f"the training loss became {mean_loss}")
        if not np.isfinite(self.flat_grads).all():
            raise NonFiniteGradientError(f"the gradient became NaN or infinite in {self.non_finite_gradients()}")
        self.optimizer.apply(self.flat_params, self.flat_grads, self._engine.kernels)
        if not np.isfinite(self.flat_params).all():
            raise NonFiniteGradientError(f"the optimizer's update made weights NaN or infinite in "
                                         f"{self.non_finite_gradients(self.parameters, 'value')}; the weights "
                                         "before that update are lost (the learning rate is far too high?)")
        return mean_loss, correct

    def non_finite_gradients(self, source=None, attribute="grad"):
        """Which layers hold a NaN or infinite gradient (or ``attribute="value"``: weight): "layer 'dense' (kernel,
        bias), ...", the last layer first (the order backpropagation reaches them)."""
        found = []
        for layer in reversed(self.layers):
            names = [p.name for p in layer.parameters() if not np.isfinite(getattr(p, attribute)).all()]
            if names:
                found.append(f"layer '{layer.name}' ({', '.join(names)})")
        return ", ".join(found) or "no layer"

    def fit(self, x, y, epochs=1, batch_size=32, validation_split=0.0, validation_data=None, shuffle=True,
            seed=None, verbose=1, callbacks=(), initial_epoch=0, initial_step=None):
        """Train, Keras style. Returns a History with loss/accuracy (and val_loss/val_accuracy) per epoch.

        validation_split takes the LAST fraction of x/y (before shuffling), as Keras does. ``seed`` fixes the
        shuffling (default: the model's seed). Ctrl+C stops training cleanly after the current step
        (``history.interrupted`` is then True; see ``CtrlC`` in minicnn/history.py). Progress goes to stderr
        (verbose=1: a bar on a terminal, else one line per epoch). ``callbacks``: see minicnn.callbacks (objects
        with ``on_epoch_begin(model, epoch)`` and/or ``on_epoch_end(model, epoch, logs)``; True from the latter stops;
        also ``on_train_begin(model)``, ``on_train_batch_end(model, batch, logs)``, ``on_train_end(model, logs)``, and
        ``model.stop_training = True`` stops after the epoch, as Keras).

        ``initial_epoch``: as Keras, the epoch to start at (epochs counts from 0, so ``epochs`` is the last epoch's
        number + 1, not how many run). ``initial_step``: the step of ``initial_epoch`` to start at; the default
        (None) is where the checkpoint this model was loaded from stopped, if it stopped inside ``initial_epoch``,
        else 0. Randomness depends on (seed, epoch, step) only: epoch e's shuffle is the (e+1)-th permutation
        drawn from ``default_rng(seed)``, and every Dropout and augmentation layer draws step k's mask or transforms
        with k = epoch * steps_per_epoch + step (``layer.calls``). So a model loaded from a checkpoint
        (``minicnn.load_model``) and trained on with the same call and ``initial_epoch`` ends with exactly the
        weights of the uninterrupted run. ``model.save_checkpoint(path)`` (e.g. from a ModelCheckpoint callback)
        saves where fit is.
        """
        epochs = whole_number(epochs, "epochs", 0)
        batch_size = whole_number(batch_size, "batch_size", 1, default=32)
        if isinstance(validation_split, bool) or not isinstance(validation_split, numbers.Real):
            raise ValueError(f"`validation_split` must be a number in [0, 1), got {validation_split!r}")
        if validation_data is not None:
            validation_data = unpack_validation_data(validation_data)
        if self.optimizer is None:
            self.compile()
        x = self.prepare_inputs(x)
        y = self.prepare_labels(y, len(x))
        if validation_data is None and validation_split:
            if not 0 < validation_split < 1:
                raise ValueError(f"validation_split must be between 0 and 1, got {validation_split}")
            split = len(x) - int(round(len(x) * validation_split))
            validation_data = (x[split:], y[split:])
            x, y = x[:split], y[:split]
        if validation_data is not None:
            x_val = self.prepare_inputs(validation_data[0])
            y_val = self.prepare_labels(validation_data[1], len(x_val))
            if len(x_val) == 0:  # refused now: evaluate would refuse it after training
                raise ValueError("the validation set is empty (0 images): pass more data, a larger validation_split, "
                                 "or no validation")
        if len(x) == 0:
            raise ValueError("no training samples left (check validation_split)")
        shuffle_seed = self.seed if seed is None else seed
        rng = np.random.default_rng(shuffle_seed)
        steps = math.ceil(len(x) / batch_size)
        history = History()
        import sys

        from minicnn.history import CtrlC
        start = self.resume_position(initial_epoch, initial_step, steps, batch_size, len(x), shuffle_seed)
        if shuffle:
            for _ in range(initial_epoch):  # replay the earlier epochs' permutations: epoch e's depends on (seed, e)
                rng.permutation(len(x))
        point = self.resume_point  # a checkpoint's history of the epochs before initial_epoch
        earlier = point.get("history", {}) if point is not None and point.get("epoch") == initial_epoch else {}
        self.stop_training = False
        for callback in callbacks:
            if hasattr(callback, "on_train_begin"):
                callback.on_train_begin(self)
        ctrl_c = CtrlC().start()  # a Ctrl+C now only counts; looked at between steps, never inside a kernel
        progress, step, epoch, logs = None, 0, initial_epoch, {}
        try:
            for epoch in range(initial_epoch, epochs):
                for callback in callbacks:
                    if hasattr(callback, "on_epoch_begin"):
                        callback.on_epoch_begin(self, epoch)
                order = rng.permutation(len(x)) if shuffle else np.arange(len(x))
                progress = EpochProgress(epoch, epochs, steps, verbose)
                first_step, loss_total, correct_total, seen = start.pop(epoch, (0, 0.0, 0, 0))
                self.training_progress = {"epoch": epoch, "step": first_step, "steps_per_epoch": steps,
                                          "batch_size": batch_size, "samples": len(x), "seed": shuffle_seed,
                                          "loss_total": loss_total, "correct_total": correct_total, "seen": seen,
                                          "history": history.history, "epochs": epochs, "pending_logs": None,
                                          "history_before": earlier}
                for step in range(first_step, steps):
                    if ctrl_c.presses:
                        raise KeyboardInterrupt
                    batch = order[step * batch_size:(step + 1) * batch_size]
                    self.set_random_step(epoch * steps + step)
                    try:
                        loss, correct = self.train_step(x[batch], y[batch])
                    except NonFiniteLossError as error:
                        progress.close({})
                        kept = ("Training stopped before applying that update: the model keeps the weights of the "
                                "last good step" if np.isfinite(self.flat_params).all() else "Training stopped")
                        raise type(error)(
                            f"{error} at epoch {epoch + 1}, step {step + 1}. {kept}; nothing was saved. Try a lower "
                            "learning rate, check the inputs for NaN, or scale the inputs to [0, 1].") from None
                    loss_total += loss * len(batch)
                    correct_total += correct
                    seen += len(batch)
                    self.training_progress.update(step=step + 1, loss_total=loss_total, correct_total=correct_total,
                                                  seen=seen)
                    progress.step({"loss": loss_total / seen, "accuracy": correct_total / seen})
                    for callback in callbacks:
                        if hasattr(callback, "on_train_batch_end"):
                            callback.on_train_batch_end(self, step, {"loss": loss, "accuracy": correct / len(batch)})
                logs = {"loss": loss_total / seen, "accuracy": correct_total / seen}
                if validation_data is not None:
                    logs["val_loss"], logs["val_accuracy"] = self.evaluate(x_val, y_val, verbose=0)
                progress.close(logs)
                # where a checkpoint saved from on_epoch_end resumes: the next epoch, its first step (with this
                # epoch's logs, which the callbacks may still add to, in its history)
                self.training_progress.update(epoch=epoch + 1, step=0, loss_total=0.0, correct_total=0, seen=0,
                                              pending_logs=logs)
                stop = any([callback.on_epoch_end(self, epoch, logs) for callback in callbacks
                            if hasattr(callback, "on_epoch_end")])
                history.record(epoch, logs)  # after the callbacks, as Keras: they may add "learning_rate"
                self.training_progress["pending_logs"] = None
                if stop or self.stop_training:
                    break
                if ctrl_c.presses and epoch + 1 < epochs:
                    raise KeyboardInterrupt
        except KeyboardInterrupt:
            history.interrupted = True
            where = f"after epoch {initial_epoch + len(history.epoch)}"
            if progress is not None and initial_epoch + len(history.epoch) == epoch:  # inside an epoch: close its bar
                progress.close({"loss": loss_total / seen, "accuracy": correct_total / seen} if seen else {}, step)
                if step:
                    history.steps_done = (step, steps)
                    where = f"in epoch {epoch + 1} after step {step}/{steps}"
            if verbose:
                print(f"Training stopped by Ctrl+C {where}; the model keeps the weights of the last finished step.",
                      file=sys.stderr, flush=True)
        finally:
            ctrl_c.stop()
        for callback in callbacks:
            if hasattr(callback, "on_train_end"):
                callback.on_train_end(self, logs)
        return history

    def full_history(self):
        """Every finished epoch's logs of the current run, across resumes: {"loss": [...], ...} (a checkpoint's
        earlier epochs, then this fit call's, then the epoch whose on_epoch_end is running)."""
        progress = self.training_progress or {}
        merged = {key: [float(v) for v in values] for key, values in progress.get("history_before", {}).items()}
        pending = {key: [value] for key, value in (progress.get("pending_logs") or {}).items()}
        for source in (progress.get("history", {}), pending):
            for key, values in source.items():
                merged.setdefault(key, []).extend(float(value) for value in values)
        return merged

    def set_random_step(self, step):
        """Make every random layer (Dropout, the augmentation layers) draw what it draws at global step ``step``
        (their ``calls`` counter; fit calls this before every step with epoch * steps_per_epoch + step)."""
        for layer in self.layers:
            if hasattr(layer, "calls"):
                layer.calls = int(step)

    def resume_position(self, initial_epoch, initial_step, steps, batch_size, samples, seed):
        """{epoch: (first step, loss sum, correct, samples seen)} for fit to start inside ``initial_epoch`` (see
        fit); checks that a checkpoint's run had the same steps per epoch, batch size, samples and seed."""
        if isinstance(initial_epoch, bool) or not isinstance(initial_epoch, (int, np.integer)) or initial_epoch < 0:
            raise ValueError(f"initial_epoch must be a non-negative integer, got {initial_epoch!r}")
        point = self.resume_point
        if initial_step is None:
            if point is None or point.get("epoch") != initial_epoch or not point.get("step"):
                return {}
            initial_step = point["step"]
        if not 0 <= initial_step <= steps:
            raise ValueError(f"initial_step must be in [0, {steps}] ({steps} steps per epoch), got {initial_step}")
        if not initial_step:
            return {}
        if point is None or point.get("epoch") != initial_epoch or point.get("step") != initial_step:
            return {initial_epoch: (initial_step, 0.0, 0, 0)}  # (no running totals: the epoch's logs cover its rest)
        run = {"steps_per_epoch": steps, "batch_size": batch_size, "samples": samples, "seed": seed}
        different = {key: (point.get(key), value) for key, value in run.items() if point.get(key) != value}
        if different:
            raise ValueError("this fit call is not the run the checkpoint stopped in: " + ", ".join(
                f"{key} {was} in the checkpoint, {now} now" for key, (was, now) in different.items())
                + ". Resume with the same data, batch_size and seed (or pass initial_step=0).")
        return {initial_epoch: (initial_step, point["loss_total"], point["correct_total"], point["seen"])}

    def save_checkpoint(self, path, metadata=None):
        """Save everything fit needs to continue exactly where it is (see fit and minicnn/serialization.py):
        weights, non-trainable state, the optimizer's state and learning rate, the epoch and step reached, the
        seeds. Atomic and verified: the previous file at ``path`` is replaced only by a complete, finite one."""
        progress = self.training_progress
        if progress is None:
            raise RuntimeError("save_checkpoint saves where fit is: call it from a callback during fit (or after)")
        checkpoint = {key: value for key, value in progress.items()
                      if key not in ("history", "history_before", "pending_logs")}
        checkpoint.update(loss_total=float(checkpoint["loss_total"]), correct_total=int(checkpoint["correct_total"]),
                          seed=None if checkpoint["seed"] is None else int(checkpoint["seed"]),
                          history=self.full_history())  # (plain JSON numbers; a float's repr reads back exactly)
        checkpoint["random_layers"] = {layer.name: layer.seed for layer in self.layers if hasattr(layer, "calls")}
        return serialization.save_model(self, path, metadata=metadata, checkpoint=checkpoint)

    def evaluate(self, x, y, batch_size=256, verbose=0):
        """(mean loss, accuracy) on x, y, at inference (dropout off, BatchNormalization's moving statistics). The
        loss includes the regularization penalties, as Keras's evaluate."""
        batch_size = whole_number(batch_size, "batch_size", 1, default=256)
        x = self.prepare_inputs(x)
        y = self.prepare_labels(y, len(x))
        if len(x) == 0:
            raise ValueError("evaluate got 0 images: there is nothing to compute a loss or an accuracy on")
        loss_total, correct = 0.0, 0
        for start in range(0, len(x), batch_size):
            logits = self._engine.outputs(x[start:start + batch_size], logits_only=True)
            labels = y[start:start + batch_size]
            loss_sum, _ = softmax_cross_entropy(logits, labels, 1.0)
            loss_total += loss_sum
            correct += int((logits.argmax(axis=1) == (labels if labels.ndim == 1 else labels.argmax(1))).sum())
        loss, accuracy = loss_total / len(x) + self.regularization_penalty(), correct / len(x)
        if verbose:
            print(f"loss: {loss:.4f} - accuracy: {accuracy:.4f}")
        return loss, accuracy

    def predict(self, x, batch_size=256, verbose=0):
        """The model's outputs for x, computed batch by batch (probabilities if the model ends in Softmax)."""
        batch_size = whole_number(batch_size, "batch_size", 1, default=256)
        x = self.prepare_inputs(x)
        if 0 < len(x) <= batch_size and self._engine.name != "reference":  # (one batch: the fast engine's array
            return self.forward(x)                                          # is already new, nothing to join)
        outputs = [self.forward(x[start:start + batch_size]) for start in range(0, len(x), batch_size)]
        if not outputs:
            return np.zeros((0, *self.output_shape), dtype=self.dtype)
        return np.concatenate(outputs)

    # ------------------------------------------------------------------ reporting and files
    def summary(self, print_fn=print, batch_size=32):
        """Print (and return) a table of layers, output shapes and parameter counts, as Keras, followed by the
        engine's plan for a batch of ``batch_size`` images (what runs for each layer, and why)."""
        if not self.built:
            self.build()
        rows = [(f"{layer.name} ({type(layer).__name__})", str((None, *layer.output_shape)),
                 f"{layer.count_params():,}") for layer in self.layers]
        widths = [max(len(header), *(len(row[i]) for row in rows)) + 2
                  for i, header in enumerate(("Layer (type)", "Output Shape", "Param #"))]
        line = "".join(text.ljust(width) for text, width in zip(("Layer (type)", "Output Shape", "Param #"), widths))
        total, trainable = self.count_params(), self.count_trainable_params()
        text = [f'Model: "{self.name}"', "=" * sum(widths), line, "=" * sum(widths)]
        text += ["".join(cell.ljust(width) for cell, width in zip(row, widths)) for row in rows]
        text += ["=" * sum(widths), f"Total params: {total:,} ({total * self.dtype.itemsize / 1024:.2f} KB, "
                 f"{self.dtype.name})", f"Trainable params: {trainable:,}",
                 f"Non-trainable params: {total - trainable:,}", "",
                 self.plan(batch_size, print_fn=None), ""]
        text = "\n".join(text)
        if print_fn is not None:
            print_fn(text)
        return text

    def plan(self, batch_size=32, print_fn=print):
        """Print (and return) what the engine runs for a batch of ``batch_size`` images: for the fast engine,
        one line per step with the algorithm and why (minicnn/fast/plan.py); for the reference engine, the
        layer files."""
        if not self.built:
            self.build()
        text = self._engine.plan(int(batch_size))
        if print_fn is not None:
            print_fn(text)
        return text

    def warm_up(self):
        """Load what the engine needs now rather than at the first call (the fast engine: Numba and its
        compiled kernels, ~0.3 s; see minicnn/fast/startup.py), then predict zeros once for 1 and 8 images so
        the kernels of both prediction paths are loaded (or compiled, the first run ever). For a server."""
        if not self.built:
            self.build()
        self._engine.warm_up()
        if self.engine == "fast":
            for images in (1, 8):
                self.predict(np.zeros((images, *self.input_shape), dtype=self.dtype))
        return self

    def save(self, path, include_optimizer=True, metadata=None):
        """Save architecture, weights (and optimizer state) to one .npz file, atomically, without pickle.
        ``metadata``: a JSON-able dict kept in the file (``load_model`` returns it as ``model.metadata``)."""
        return serialization.save_model(self, path, include_optimizer=include_optimizer, metadata=metadata)

    def load_weights(self, path):
        """Load the weights of a saved model into this one (same architecture)."""
        if not self.built:
            self.build()
        _, arrays = serialization.read_model_file(path)
        serialization.assign_weights(self, arrays, path)


def load_model(path, dtype=None, engine=None):
    """Rebuild a model saved with ``model.save(path)``, with its weights (and optimizer state, if saved). It runs
    on ``engine`` if given, else on MINICNN_ENGINE if set, else on the engine it was saved with."""
    architecture, arrays = serialization.read_model_file(path)
    engine = engine or os.environ.get("MINICNN_ENGINE", "").strip().lower() or architecture.get("engine")
    if engine is not None:
        architecture["engine"] = engine
    try:
        model = Sequential.from_config(architecture, dtype=dtype)
    except (KeyError, TypeError, ValueError, AttributeError, OverflowError, IndexError) as error:
        raise ModelFileError(f"{path}: the architecture record cannot be rebuilt: {error}") from None
    serialization.assign_weights(model, arrays, path)
    model.metadata = architecture.get("metadata")
    saved_optimizer = architecture.get("optimizer")
    if saved_optimizer is not None:
        load_optimizer_state(model, saved_optimizer, arrays, path)
    if "checkpoint" in architecture:  # a training checkpoint (Sequential.save_checkpoint): ready to continue
        model.resume_point = serialization.check_checkpoint(architecture, arrays, path, model)
    return model


def load_optimizer_state(model, saved_optimizer, arrays, path):
    """Compile ``model`` with the saved optimizer and put its state back, or ModelFileError: an unknown optimizer,
    settings it refuses, or state arrays missing or of the wrong length are never silently dropped."""
    if saved_optimizer.get("class") not in OPTIMIZER_CLASSES:
        raise ModelFileError(f"{path}: unknown optimizer {saved_optimizer.get('class')!r:.60} in the file; minicnn "
                             f"knows {sorted(OPTIMIZER_CLASSES)}. Save it with include_optimizer=False to drop it.")
    try:
        optimizer = OPTIMIZER_CLASSES[saved_optimizer["class"]](**saved_optimizer.get("config", {}))
    except (TypeError, ValueError) as error:
        raise ModelFileError(f"{path}: the saved optimizer's settings are refused: {error}") from None
    model.compile(optimizer=optimizer, loss=model.loss)
    state = []
    for name in model.optimizer.state_names:
        array = arrays.get(f"optimizer_{name}")
        if array is None or array.shape != model.flat_params.shape:
            found = "missing" if array is None else f"of shape {array.shape}"
            raise ModelFileError(f"{path}: the optimizer's state {name!r} is {found}; the model has "
                                 f"{model.flat_params.size} parameters: the file is damaged.")
        state.append(array)
    model.optimizer.set_state(saved_optimizer.get("iterations", 0), state)


def warm_up(model=None):
    """Load Numba and every kernel now (see Sequential.warm_up, which also loads a model's kernels)."""
    if model is not None:
        return model.warm_up()
    startup.load_numba_and_kernels()
