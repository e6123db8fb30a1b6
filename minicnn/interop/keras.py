"""Convert models between minicnn and Keras 3, and load models trained and saved with Keras (.keras files).

    keras_model = to_keras(model)                   # minicnn Sequential -> keras.Sequential, same weights
    model       = from_keras(keras_model)           # keras.Sequential (or a linear functional model) -> minicnn
    model       = load_keras_model("digits.keras")  # keras.saving.load_model + from_keras

Layer by layer (both directions)::

    minicnn                                     Keras 3
    Conv2D(filters, kernel_size, strides,       Conv2D(..., data_format="channels_last", dilation_rate=1, groups=1)
           padding)                             kernel (KH, KW, C_in, C_out) and bias (C_out,): the same arrays
    Dense(units)                                Dense(units); kernel (D_in, D_out), bias (D_out,): the same arrays
    MaxPool2D(pool_size, strides, padding)      MaxPooling2D(pool_size, strides, padding)
    Flatten()                                   Flatten() (channels_last: both flatten NHWC in the same order)
    ReLU()                                      ReLU(), Activation("relu"), or activation="relu" on Conv2D/Dense
    Softmax()                                   Softmax(axis=-1), Activation("softmax"), or activation="softmax"
    LeakyReLU(negative_slope)                   LeakyReLU(negative_slope), or activation="leaky_relu" (slope 0.2)
    AveragePooling2D(pool_size, strides,        AveragePooling2D(pool_size, strides, padding)
                     padding)
    Dropout(rate, seed)                         Dropout(rate, seed=seed) (the masks differ: Keras draws its own)
    BatchNormalization(momentum, epsilon,       BatchNormalization(axis=-1, momentum, epsilon, center, scale);
                       center, scale)           gamma, beta, moving_mean, moving_variance: the same arrays
    RandomRotation(factor, fill_mode,           RandomRotation / RandomTranslation / RandomZoom with the same
        interpolation, seed, fill_value),       arguments (channels_last; the draws differ: Keras has its own
    RandomTranslation(...), RandomZoom(...)     generator)
    kernel_regularizer=/bias_regularizer=       keras.regularizers.L1 / L2 / L1L2 with the same factors
    l1, l2, l1_l2 on Conv2D and Dense

minicnn keeps activations as separate layers: Keras's ``Dense(64, activation="relu")`` becomes ``Dense(64)`` and
``ReLU()``. ``to_keras`` fuses them back by default (``fuse_activations=False`` emits ``keras.layers.ReLU`` and
``keras.layers.Softmax`` instead).

From Keras, ``InputLayer`` and ``activation="linear"`` are dropped silently; other layers that are the identity at
inference (SpatialDropout2D, GaussianDropout, GaussianNoise, AlphaDropout; Dropout with a noise_shape) are
skipped with an
``InteropWarning``: predictions are unchanged, but training the converted model further in minicnn runs
without them. ``use_bias=False`` becomes a zero bias (with a warning: minicnn will train it). Any other layer
or setting raises ``UnsupportedLayerError`` naming the layer.

minicnn itself never imports Keras: this module imports it only when one of its functions is called. When
neither ``KERAS_BACKEND`` nor an importable backend configured in ``~/.keras/keras.json`` is there, it selects
the JAX backend (the project's reference).
"""
from __future__ import annotations

import importlib.util
import json
import os
import sys
import warnings
from pathlib import Path

import numpy as np

from minicnn.errors import MiniCNNError, ModelFileError


class UnsupportedLayerError(MiniCNNError, ValueError):
    """A Keras layer (or a setting of one) that minicnn cannot reproduce exactly."""


class InteropWarning(UserWarning):
    """A Keras layer was skipped or changed in a way that leaves predictions exactly the same."""


_BACKEND_MODULES = {"tensorflow": "tensorflow", "jax": "jax", "torch": "torch", "numpy": "numpy",
                    "openvino": "openvino"}


def _configured_backend():
    """The backend ~/.keras/keras.json (or $KERAS_HOME/keras.json) names; Keras's default is tensorflow."""
    home = os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")
    try:
        with open(os.path.join(home, "keras.json")) as file:
            return str(json.load(file).get("backend", "tensorflow"))
    except (OSError, ValueError, AttributeError):
        return "tensorflow"


def _import_keras():
    """Import Keras 3, picking the JAX backend when no usable backend is configured. Raises a clear ImportError."""
    if "keras" not in sys.modules and "KERAS_BACKEND" not in os.environ:
        module = _BACKEND_MODULES.get(_configured_backend(), "tensorflow")
        if importlib.util.find_spec(module) is None and importlib.util.find_spec("jax") is not None:
            os.environ["KERAS_BACKEND"] = "jax"
    try:
        import keras
    except ImportError as error:
        raise ImportError(
            f"minicnn.interop needs Keras 3 and a backend ({error}). Install them with "
            "`pip install 'minicnn[test]'` (Keras 3 + JAX) and set KERAS_BACKEND=jax.") from error
    if int(keras.__version__.split(".")[0]) < 3:
        raise ImportError(f"minicnn.interop needs Keras 3, found Keras {keras.__version__}")
    return keras


def _check_float64(keras):
    """JAX silently computes float64 arrays in float32 unless x64 is enabled: refuse instead of being wrong."""
    if keras.backend.backend() == "jax":
        import jax
        if not jax.config.read("jax_enable_x64"):
            raise MiniCNNError(
                "a float64 Keras model on the JAX backend needs 64-bit JAX: call "
                "jax.config.update('jax_enable_x64', True) (or set JAX_ENABLE_X64=1) before converting, "
                "or convert a float32 model (model.clone(dtype='float32')).")


# ---------------------------------------------------------------------------------------------- minicnn -> Keras
def to_keras(model, fuse_activations=True):
    """A ``keras.Sequential`` that computes what the minicnn ``model`` computes, with copies of its weights.

    The Keras model has the minicnn model's dtype (float32 or float64; float64 on JAX needs jax_enable_x64),
    its layer names and its input shape. With ``fuse_activations`` (the default) a ReLU or Softmax that follows a
    Conv2D or Dense layer becomes that layer's ``activation=``, as Keras users write it; otherwise it stays a
    separate ``keras.layers.ReLU`` / ``keras.layers.Softmax``. The Keras model is not compiled.
    """
    keras = _import_keras()
    from minicnn.layers import (
        AveragePooling2D,
        BatchNormalization,
        Conv2D,
        Dense,
        Dropout,
        Flatten,
        LeakyReLU,
        MaxPool2D,
        ReLU,
        Softmax,
    )

    if not model.built:
        model.build()
    dtype = model.dtype.name
    if dtype == "float64":
        _check_float64(keras)
    keras_layers, weighted = [], []
    layers = model.layers
    index = 0
    while index < len(layers):
        layer = layers[index]
        following = layers[index + 1] if index + 1 < len(layers) else None
        common = {"name": layer.name, "dtype": dtype}
        kind = type(layer)
        if kind in (Conv2D, Dense):
            # Built with zeros (the weights are overwritten below): Keras's random initializers would compile a
            # JAX kernel for every new weight shape, seconds per model. The minicnn initializers are put back after.
            common.update(kernel_initializer="zeros", bias_initializer="zeros",
                          kernel_regularizer=_keras_regularizer(keras, layer.kernel_regularizer),
                          bias_regularizer=_keras_regularizer(keras, layer.bias_regularizer))
            activation = None
            if fuse_activations and type(following) in (ReLU, Softmax):
                activation = "relu" if type(following) is ReLU else "softmax"
                index += 1
            if kind is Conv2D:
                keras_layer = keras.layers.Conv2D(layer.filters, layer.kernel_size, strides=layer.strides,
                                                  padding=layer.padding, activation=activation, **common)
            else:
                keras_layer = keras.layers.Dense(layer.units, activation=activation, **common)
            weighted.append((keras_layer, layer))
        elif kind is MaxPool2D:
            keras_layer = keras.layers.MaxPooling2D(layer.pool_size, strides=layer.strides, padding=layer.padding,
                                                    **common)
        elif kind is AveragePooling2D:
            keras_layer = keras.layers.AveragePooling2D(layer.pool_size, strides=layer.strides, padding=layer.padding,
                                                        **common)
        elif kind is BatchNormalization:
            keras_layer = keras.layers.BatchNormalization(axis=-1, momentum=layer.momentum, epsilon=layer.epsilon,
                                                          center=layer.center, scale=layer.scale, **common)
            weighted.append((keras_layer, layer))
        elif kind is Dropout:
            keras_layer = keras.layers.Dropout(layer.rate, seed=layer.seed, **common)
        elif getattr(layer, "augments", False):
            keras_layer = _keras_augmentation(keras, layer, common)
        elif kind is LeakyReLU:
            keras_layer = keras.layers.LeakyReLU(negative_slope=layer.negative_slope, **common)
        elif kind is Flatten:
            keras_layer = keras.layers.Flatten(**common)
        elif kind is ReLU:
            keras_layer = keras.layers.ReLU(**common)
        elif kind is Softmax:
            keras_layer = keras.layers.Softmax(axis=-1, **common)
        else:
            raise UnsupportedLayerError(f"to_keras: no Keras equivalent known for layer {layer.name!r} "
                                        f"({kind.__name__})")
        keras_layers.append(keras_layer)
        index += 1
    keras_model = keras.Sequential([keras.Input(shape=tuple(model.input_shape), dtype=dtype), *keras_layers],
                                   name=model.name)
    for keras_layer, layer in weighted:
        keras_layer.set_weights([np.array(p.value, dtype=dtype) for p in (*layer.parameters(), *layer.state())])
        if hasattr(layer, "kernel_initializer"):
            keras_layer.kernel_initializer = keras.initializers.get(layer.kernel_initializer)
            keras_layer.bias_initializer = keras.initializers.get(layer.bias_initializer)
    return keras_model


def _keras_augmentation(keras, layer, common):
    """RandomRotation / RandomTranslation / RandomZoom -> Keras's layer of the same name and arguments."""
    settings = {"fill_mode": layer.fill_mode, "interpolation": layer.interpolation, "seed": layer.seed,
                "fill_value": layer.fill_value, **common}
    kind = type(layer).__name__
    if kind == "RandomRotation":
        return keras.layers.RandomRotation(tuple(layer.factor), **settings)
    if kind == "RandomTranslation":
        return keras.layers.RandomTranslation(tuple(layer.height_factor), tuple(layer.width_factor), **settings)
    width = None if layer.width_factor is None else tuple(layer.width_factor)
    return keras.layers.RandomZoom(tuple(layer.height_factor), width, **settings)


def _minicnn_augmentation(keras, keras_layer):
    """Keras's RandomRotation / RandomTranslation / RandomZoom -> minicnn's, or None for another layer."""
    from minicnn.layers import RandomRotation, RandomTranslation, RandomZoom

    settings = {"fill_mode": keras_layer.fill_mode, "interpolation": keras_layer.interpolation,
                "seed": keras_layer.seed, "fill_value": float(keras_layer.fill_value)}
    kind = type(keras_layer)
    if kind is keras.layers.RandomRotation:
        return RandomRotation(tuple(keras_layer.factor), **settings)
    if kind is keras.layers.RandomTranslation:
        return RandomTranslation(keras_layer.height_factor, keras_layer.width_factor, **settings)
    if kind is keras.layers.RandomZoom:
        return RandomZoom(keras_layer.height_factor, keras_layer.width_factor, **settings)
    return None


def _keras_regularizer(keras, regularizer):
    """minicnn's l1/l2/l1_l2 -> keras.regularizers.L1/L2/L1L2 with the same factors (None -> None)."""
    from minicnn.regularizers import L1, L2

    if regularizer is None:
        return None
    if type(regularizer) is L1:
        return keras.regularizers.L1(regularizer.l1)
    if type(regularizer) is L2:
        return keras.regularizers.L2(regularizer.l2)
    return keras.regularizers.L1L2(l1=regularizer.l1, l2=regularizer.l2)


def _minicnn_regularizer(keras, regularizer, where):
    """keras.regularizers.L1/L2/L1L2 -> minicnn's (None -> None); anything else is an error."""
    from minicnn import regularizers

    if regularizer is None:
        return None
    config = regularizer.get_config()
    if type(regularizer) is keras.regularizers.L1:
        return regularizers.l1(float(config["l1"]))
    if type(regularizer) is keras.regularizers.L2:
        return regularizers.l2(float(config["l2"]))
    if type(regularizer) is keras.regularizers.L1L2:
        return regularizers.l1_l2(float(config["l1"]), float(config["l2"]))
    raise UnsupportedLayerError(f"from_keras: {where} has the regularizer {type(regularizer).__name__}; minicnn has "
                                "L1, L2 and L1L2")


# ---------------------------------------------------------------------------------------------- Keras -> minicnn
def _identity_at_inference(keras):
    names = ("SpatialDropout1D", "SpatialDropout2D", "SpatialDropout3D", "GaussianDropout",
             "GaussianNoise", "AlphaDropout")
    return tuple(getattr(keras.layers, name) for name in names if hasattr(keras.layers, name))


def _layer_chain(keras, keras_model):
    """The layers of a Sequential model (nested Sequentials expanded), or of a functional model that is a chain."""
    if isinstance(keras_model, keras.Sequential):
        layers = []
        for layer in keras_model.layers:
            layers += _layer_chain(keras, layer) if isinstance(layer, keras.Sequential) else [layer]
        return layers
    if not isinstance(keras_model, keras.Model):
        raise TypeError(f"from_keras expects a keras.Sequential or keras.Model, got {type(keras_model).__name__}")
    not_a_chain = UnsupportedLayerError(
        f"from_keras: model {keras_model.name!r} is not a simple stack of layers (one input, one output, each "
        "layer feeding the next); minicnn only has Sequential models")
    try:
        inputs, outputs = keras_model.inputs, keras_model.outputs
    except (AttributeError, ValueError):
        raise not_a_chain from None
    if not inputs or len(inputs) != 1 or len(outputs) != 1:
        raise not_a_chain
    tensor, layers = inputs[0], []
    for layer in keras_model.layers:
        if isinstance(layer, keras.layers.InputLayer):
            continue
        try:
            if len(layer._inbound_nodes) != 1 or layer.input is not tensor:
                raise not_a_chain
        except (AttributeError, ValueError):
            raise not_a_chain from None
        tensor = layer.output
        layers.append(layer)
    if tensor is not outputs[0]:
        raise not_a_chain
    return layers


def _input_shape(keras_model, input_shape):
    if input_shape is not None:
        return tuple(int(d) for d in input_shape)
    try:
        shape = tuple(keras_model.input_shape)[1:]
    except (AttributeError, ValueError):
        shape = None
    if not shape or any(d is None for d in shape):
        raise UnsupportedLayerError(
            f"from_keras: the input shape of model {keras_model.name!r} is not fully known ({shape}); pass "
            "input_shape=(height, width, channels)")
    return tuple(int(d) for d in shape)


def _activation_layer(activation, where):
    """'relu' -> ReLU(), 'softmax' -> Softmax(), 'leaky_relu' -> LeakyReLU(0.2), 'linear'/None -> None; anything
    else is an error."""
    from minicnn.layers import ACTIVATION_LAYERS

    if activation in (None, "linear"):
        return None
    if activation in ACTIVATION_LAYERS:
        return ACTIVATION_LAYERS[activation]()
    raise UnsupportedLayerError(f"from_keras: {where} uses activation {activation!r}; minicnn has 'relu', "
                                "'leaky_relu' and 'softmax' (and 'linear')")


def _activation_name(keras, function):
    """'relu', 'softmax', 'leaky_relu' or 'linear' for Keras's own activation functions; otherwise the function's
    name."""
    known = {keras.activations.relu: "relu", keras.activations.softmax: "softmax", keras.activations.linear: "linear",
             keras.activations.leaky_relu: "leaky_relu"}
    if function is None:
        return None
    try:
        return known[function]
    except (KeyError, TypeError):
        return getattr(function, "__name__", repr(function)) + " (not Keras's relu/softmax/linear)"


def _check_setting(condition, where, setting):
    if not condition:
        raise UnsupportedLayerError(f"from_keras: {where} has {setting}, which minicnn does not support")


def _weights(keras, keras_layer, where):
    """[kernel, bias] of a Conv2D/Dense layer as NumPy arrays (LoRA merged; a missing bias becomes zeros)."""
    policy = getattr(keras_layer, "dtype_policy", None)
    if getattr(policy, "quantization_mode", None):
        raise UnsupportedLayerError(f"from_keras: {where} is quantized ({policy.quantization_mode}); "
                                    "minicnn needs float weights")
    kernel = _to_numpy(keras, keras_layer.kernel)
    if keras_layer.use_bias:
        bias = _to_numpy(keras, keras_layer.bias)
    else:
        warnings.warn(f"from_keras: {where} has use_bias=False; minicnn gives it a bias of zeros (same outputs), "
                      "which training in minicnn will then update", InteropWarning, stacklevel=3)
        bias = np.zeros(kernel.shape[-1], dtype=kernel.dtype)
    return [kernel, bias]


def _to_numpy(keras, tensor):
    """A NumPy copy of a Keras variable (or of the tensor a LoRA layer's kernel property computes). The variable's
    backend value is converted, not the Variable itself (whose __array__ NumPy 2 warns about)."""
    return np.array(keras.ops.convert_to_numpy(getattr(tensor, "value", tensor)))


def _model_dtype(keras, layers):
    dtypes = {np.dtype(keras.backend.standardize_dtype(v.dtype)) for layer in layers for v in layer.weights}
    return "float64" if dtypes and dtypes <= {np.dtype(np.float64)} else "float32"


def from_keras(keras_model, dtype=None, input_shape=None):
    """A minicnn Sequential that computes what ``keras_model`` computes, with copies of its weights.

    ``keras_model``: a ``keras.Sequential`` or a functional ``keras.Model`` that is a plain stack of layers.
    ``dtype``: "float32" or "float64"; default: float64 if the Keras weights are float64, else float32.
    ``input_shape``: (height, width, channels), only needed when the Keras model does not know its own.
    Raises ``UnsupportedLayerError`` for a layer or setting minicnn cannot reproduce exactly.
    """
    keras = _import_keras()
    from minicnn.layers import (
        AveragePooling2D,
        BatchNormalization,
        Conv2D,
        Dense,
        Dropout,
        Flatten,
        LeakyReLU,
        MaxPool2D,
        ReLU,
        Softmax,
    )
    from minicnn.model import Sequential

    layers = _layer_chain(keras, keras_model)
    shape = _input_shape(keras_model, input_shape)
    dtype = dtype or _model_dtype(keras, layers)
    skipped_silently = (keras.layers.InputLayer,) + ((keras.layers.Identity,) if hasattr(keras.layers, "Identity")
                                                     else ())
    identity_at_inference = _identity_at_inference(keras)
    taken = set()

    def unique(name):
        name, base, count = str(name), str(name), 0
        while name in taken:
            count += 1
            name = f"{base}_{count}"
        taken.add(name)
        return name

    minicnn_layers, weights = [], []

    def add(layer, name):
        layer.name = unique(name)
        minicnn_layers.append(layer)

    def add_activation(activation, owner, where):
        layer = _activation_layer(activation, where)
        if layer is not None:
            add(layer, f"{owner}_{activation}")

    # Layer attributes are read directly: get_config() would import TensorFlow whenever it is installed.
    for keras_layer in layers:
        kind = type(keras_layer)
        name = keras_layer.name
        where = f"layer {name!r} ({kind.__name__})"
        if kind in skipped_silently:
            continue
        if kind in identity_at_inference:
            warnings.warn(f"from_keras: skipped {where}: it is the identity at inference, so predictions are "
                          "unchanged, but minicnn has no such layer and training this model further in minicnn "
                          "runs without it", InteropWarning, stacklevel=2)
            continue
        pools = (keras.layers.MaxPooling2D, keras.layers.AveragePooling2D)
        if kind in (keras.layers.Conv2D, keras.layers.Flatten, *pools):
            data_format = getattr(keras_layer, "data_format", "channels_last")
            _check_setting(data_format in ("channels_last", None), where, f"data_format={data_format!r}")
        if kind in (keras.layers.Conv2D, *pools):
            _check_setting(keras_layer.padding in ("valid", "same"), where, f"padding={keras_layer.padding!r}")
        if kind in (keras.layers.Conv2D, keras.layers.Dense):
            regularizers = {name: _minicnn_regularizer(keras, getattr(keras_layer, name, None), where)
                            for name in ("kernel_regularizer", "bias_regularizer")}
            activity = getattr(keras_layer, "activity_regularizer", None)
            _check_setting(activity is None, where, f"activity_regularizer={activity!r}")
        if kind is keras.layers.Conv2D:
            dilation = tuple(keras_layer.dilation_rate)
            _check_setting(dilation == (1, 1), where, f"dilation_rate={dilation}")
            _check_setting(keras_layer.groups == 1, where, f"groups={keras_layer.groups}")
            add(Conv2D(keras_layer.filters, tuple(keras_layer.kernel_size), strides=tuple(keras_layer.strides),
                       padding=keras_layer.padding, **regularizers), name)
            weights += _weights(keras, keras_layer, where)
            add_activation(_activation_name(keras, keras_layer.activation), name, where)
        elif kind is keras.layers.Dense:
            add(Dense(keras_layer.units, **regularizers), name)
            weights += _weights(keras, keras_layer, where)
            add_activation(_activation_name(keras, keras_layer.activation), name, where)
        elif kind is keras.layers.MaxPooling2D:
            strides = keras_layer.strides or keras_layer.pool_size
            add(MaxPool2D(tuple(keras_layer.pool_size), strides=tuple(strides), padding=keras_layer.padding), name)
        elif kind is keras.layers.AveragePooling2D:
            strides = keras_layer.strides or keras_layer.pool_size
            add(AveragePooling2D(tuple(keras_layer.pool_size), strides=tuple(strides), padding=keras_layer.padding),
                name)
        elif kind is keras.layers.Dropout and getattr(keras_layer, "noise_shape", None) is None:
            add(Dropout(float(keras_layer.rate), seed=keras_layer.seed), name)
        elif kind is keras.layers.Dropout:
            warnings.warn(f"from_keras: skipped {where}: it has a noise_shape, which minicnn's Dropout does not "
                          "have; it is the identity at inference, so predictions are unchanged, but training this "
                          "model further in minicnn runs without it", InteropWarning, stacklevel=2)
        elif kind in (keras.layers.RandomRotation, keras.layers.RandomTranslation, keras.layers.RandomZoom):
            data_format = getattr(keras_layer, "data_format", "channels_last")
            _check_setting(data_format in ("channels_last", None), where, f"data_format={data_format!r}")
            add(_minicnn_augmentation(keras, keras_layer), name)
        elif kind is keras.layers.LeakyReLU:
            add(LeakyReLU(negative_slope=float(keras_layer.negative_slope)), name)
        elif kind is keras.layers.BatchNormalization:
            axis = keras_layer.axis
            try:
                last = len(keras_layer.input.shape) - 1
            except (AttributeError, ValueError):
                last = -1
            _check_setting(axis in (-1, last), where,
                           f"axis={axis} (minicnn normalizes the last axis, the channels of NHWC)")
            for setting in ("renorm", "synchronized"):
                _check_setting(not getattr(keras_layer, setting, False), where, f"{setting}=True")
            add(BatchNormalization(momentum=float(keras_layer.momentum), epsilon=float(keras_layer.epsilon),
                                   center=keras_layer.center, scale=keras_layer.scale), name)
            weights += [_to_numpy(keras, variable) for variable in keras_layer.weights]
        elif kind is keras.layers.Flatten:
            add(Flatten(), name)
        elif kind is keras.layers.ReLU:
            max_value, slope, threshold = keras_layer.max_value, keras_layer.negative_slope, keras_layer.threshold
            _check_setting(max_value is None and not slope and not threshold, where,
                           f"max_value={max_value}, negative_slope={slope}, threshold={threshold} "
                           "(minicnn's ReLU is max(x, 0))")
            add(ReLU(), name)
        elif kind is keras.layers.Softmax:
            axis = keras_layer.axis
            _check_setting(axis in (-1, [-1], (-1,)), where, f"axis={axis} (minicnn's Softmax uses the last axis)")
            add(Softmax(), name)
        elif kind is keras.layers.Activation:
            layer = _activation_layer(_activation_name(keras, keras_layer.activation), where)
            if layer is not None:
                add(layer, name)
        else:
            raise UnsupportedLayerError(
                f"from_keras: {where} has no minicnn equivalent. minicnn supports Conv2D, Dense, MaxPooling2D, "
                "AveragePooling2D, BatchNormalization, Dropout, Flatten, ReLU, LeakyReLU, Softmax and "
                "Activation('relu'/'leaky_relu'/'softmax'/'linear'), skips InputLayer and other dropout-like "
                "layers, and refuses anything else rather than compute something different.")

    model = Sequential(minicnn_layers, input_shape=shape, dtype=dtype, name=keras_model.name)
    model.set_weights(weights)
    return model


def load_keras_model(path, dtype=None, input_shape=None, safe_mode=True):
    """Load a model trained and saved with Keras (``model.save("digits.keras")``) as a minicnn Sequential.

    The file is read with ``keras.saving.load_model(path, compile=False, safe_mode=safe_mode)`` (safe mode refuses
    to run code stored in the file), then converted with ``from_keras`` (see there for ``dtype`` and
    ``input_shape``). The Keras optimizer state is not carried over: compile the minicnn model to train it.
    """
    path = Path(path)
    if not path.exists():
        raise ModelFileError(f"{path}: no such Keras model file")
    if path.suffix == ".keras":
        check_keras_archive(path)
    keras = _import_keras()
    try:
        keras_model = keras.saving.load_model(str(path), compile=False, safe_mode=safe_mode)
    except Exception as error:  # a damaged file fails anywhere inside Keras or h5py: name it, never a traceback
        raise ModelFileError(f"{path}: Keras could not load this model ({type(error).__name__}: {error}). "
                             "Is it a complete .keras file? Save it again from Keras.") from error
    model = from_keras(keras_model, dtype=dtype, input_shape=input_shape)
    for weight in model.weights():  # as minicnn's own .npz loader: NaN or infinite weights are refused
        if not np.isfinite(weight.value).all():
            raise ModelFileError(f"{path}: weight {weight.name} holds NaN or infinity; minicnn refuses such a model.")
    return model


def check_keras_archive(path, budget=None):
    """Refuse a .keras file that is not a sound zip, or whose members declare more than ``budget`` bytes (default
    minicnn.schema.LIMITS["file_bytes"]) or a config.json over LIMITS["architecture_bytes"], before Keras
    decompresses or allocates anything. Every member's CRC is checked (reading no more than the declared sizes)."""
    import zipfile

    from minicnn.schema import LIMITS

    budget = LIMITS["file_bytes"] if budget is None else budget
    try:
        with zipfile.ZipFile(path) as archive:
            infos = archive.infolist()
            total = sum(info.file_size for info in infos)
            if total > budget:
                raise ModelFileError(f"{path}: its members declare {total:,} bytes once decompressed, over the budget "
                                     f"of {budget:,} (minicnn.schema.LIMITS['file_bytes']); nothing was decompressed.")
            for info in infos:
                if info.filename == "config.json" and info.file_size > LIMITS["architecture_bytes"]:
                    raise ModelFileError(f"{path}: config.json declares {info.file_size:,} bytes, far more than a "
                                         "model's configuration takes.")
            damaged = archive.testzip()
            if damaged is None and "config.json" in archive.namelist():
                _check_keras_config(archive.read("config.json").decode("utf-8", "replace"), path)
    except ModelFileError:
        raise
    except Exception as error:  # BadZipFile, zlib.error, EOFError, OSError, NotImplementedError...
        raise ModelFileError(f"{path}: not a readable .keras file (corrupted or truncated?): "
                             f"{type(error).__name__}: {error}. Save it again from Keras.") from None
    if damaged is not None:
        raise ModelFileError(f"{path}: member {damaged} is damaged (its checksum does not match). Save it again.")


def _check_keras_config(text, path):
    """Bound what Keras would allocate from config.json: units/filters and every input size within minicnn's
    limits (minicnn.schema.LIMITS), checked on the JSON (depth-limited) before Keras builds the model."""
    from minicnn.schema import LIMITS, parse_architecture

    config = parse_architecture(text, f"{path} (config.json)")
    stack = [(config, "")]
    while stack:
        node, key = stack.pop()
        if isinstance(node, dict):
            stack.extend((value, name) for name, value in node.items())
        elif isinstance(node, list):
            stack.extend((value, key) for value in node)
        elif isinstance(node, int) and not isinstance(node, bool):
            limit = (LIMITS["units"] if key in ("units", "filters") else
                     LIMITS["dimension"] if key in ("batch_shape", "batch_input_shape", "input_shape", "shape") else None)
            if limit is not None and not -1 <= node <= limit:
                raise ModelFileError(f"{path}: config.json sets {key} to {node}, over minicnn's limit of {limit} "
                                     "(minicnn.schema.LIMITS); nothing was allocated.")
