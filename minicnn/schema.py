"""What a model file may contain, checked before anything is allocated: the one validation layer of the format.

``load_model`` and ``model.load_weights`` (through minicnn/serialization.py) read a file in this order, and stop
at the first thing that is wrong with a ModelFileError that names the file, the entry and the rule:

1. The zip directory (``read_archive``): at most ``LIMITS["members"]`` members, each a ``<name>.npy`` with a plain
   name, their declared sizes summing to at most ``LIMITS["file_bytes"]``: nothing is decompressed yet.
2. Each member's .npy header (magic, version, dtype, shape) is read and checked before its data: no object
   dtype (so no pickle, ever), and ``prod(shape) * itemsize`` must fit in the member's declared size. Only then
   is the data read, never more than the header declared (zipfile stops at the declared size and checks CRC).
3. The architecture JSON (``parse_architecture``): at most ``LIMITS["architecture_bytes"]``, nesting at most
   ``LIMITS["json_depth"]`` deep, no NaN/Infinity, no float that overflows (``1e999``), no integer longer than
   30 digits.
4. Its schema (``check_architecture``): types and ranges of every top-level entry and every layer's config, the
   layer classes from minicnn's fixed list, then a dry run of the shapes (``compute_output_shape``, which
   allocates nothing) with the parameter count and every layer's output size held to ``LIMITS["parameters"]``
   and ``LIMITS["sample_elements"]``: ``Dense(10**12)`` is refused before ``Sequential.build`` allocates.
5. The arrays (``check_arrays``): weights, non-trainable state and optimizer state must be real floating-point
   (complex and integer arrays are refused, not cast) and finite; names must be exactly ``param_000``, ...

The limits are generous for this project's models (the largest trains ~1.2 M parameters) and can be raised by
changing ``LIMITS`` before loading. This module knows the file format and the layer classes only.
"""
from __future__ import annotations

import json
import math
import re
import zipfile
import zlib

import numpy as np

from minicnn.errors import ModelFileError, ShapeError
from minicnn.initializers import INITIALIZERS
from minicnn.layers import ACTIVATION_LAYERS, LAYER_CLASSES
from minicnn.losses import LOSSES

LIMITS = {
    "file_bytes": 2 << 30,          # total of the members' declared (uncompressed) sizes: 2 GiB
    "members": 10_000,              # zip members
    "architecture_bytes": 1 << 20,  # the architecture JSON: 1 MiB
    "json_depth": 32,               # nesting of lists and objects in it
    "layers": 1000,
    "dimension": 1 << 15,           # one axis of the input shape (height, width or channels)
    "sample_elements": 1 << 24,     # elements of one sample at any layer's input or output (64 MiB float32)
    "parameters": 1 << 27,          # trainable + non-trainable numbers of the whole model (512 MiB float32)
    "compression": 50,              # a member over 16 MiB may not decompress to more than 50x its stored size
    "units": 1 << 20,               # Dense units, Conv2D filters
    "window": 1 << 10,              # kernel_size, pool_size, strides
}
ENGINE_NAMES = ("fast", "reference", "twins")
ARRAY_PREFIXES = ("param_", "state_", "optimizer_")
_MEMBER_NAME = re.compile(r"[A-Za-z0-9_]{1,64}")


def _fail(path, message):
    raise ModelFileError(f"{path}: {message}")


# ---------------------------------------------------------------- 1, 2: the zip and the .npy headers
def read_model_archive(path, format_name, limits=None):
    """(architecture dict, {name: array}) of the .npz at ``path``: the zip directory checked, then the format
    marker and the architecture read and checked, then the arrays, each member's declared size held to what the
    architecture's parameter count allows and its .npy header checked before its data."""
    limits = limits or LIMITS
    try:
        with zipfile.ZipFile(path) as archive:
            infos = {}
            for info in archive.infolist():
                name = info.filename[:-4] if info.filename.endswith(".npy") else None
                if name is None or not _MEMBER_NAME.fullmatch(name) or name in infos:
                    _fail(path, f"unexpected member {info.filename[:80]!r}: a model file holds only <name>.npy arrays "
                                "with plain, distinct names.")
                infos[name] = info
                if len(infos) > limits["members"]:
                    _fail(path, f"over {limits['members']} members, more than a model file has.")
            total = sum(info.file_size for info in infos.values())
            if total > limits["file_bytes"]:
                _fail(path, f"its members declare {total:,} bytes once decompressed, over the budget of "
                            f"{limits['file_bytes']:,} (minicnn.schema.LIMITS['file_bytes']); nothing was decompressed.")
            if "format" not in infos:
                _fail(path, f"not a minicnn model file (no format marker; expected {format_name}).")
            found = _read_text(archive, infos["format"], path, 4 * 64)
            if found != format_name:
                _fail(path, f"not a minicnn model file ({found[:64]!r}; expected {format_name}).")
            if "architecture" not in infos:
                _fail(path, "the architecture record is missing. Save the model again.")
            text = _read_text(archive, infos["architecture"], path, 4 * limits["architecture_bytes"])
            architecture = parse_architecture(text, path, limits)
            parameters = check_architecture(architecture, path, limits)
            # No array of a model is bigger than all of its parameters in float64; all of them together are at most
            # the weights and two optimizer states (Adam's m and v) of that size: the budget before decompressing.
            largest = 8 * parameters + 4096
            arrays = {}
            for name, info in infos.items():
                if name in ("format", "architecture"):
                    continue
                if info.file_size > largest:
                    _fail(path, f"member {info.filename} declares {info.file_size:,} bytes, more than this "
                                f"architecture's weights can take ({largest:,}): the file is damaged or not minicnn's; "
                                "nothing was decompressed.")
                if info.file_size > 16 << 20 and info.file_size > limits["compression"] * info.compress_size:
                    _fail(path, f"member {info.filename} would decompress {info.file_size // max(info.compress_size, 1)}"
                                f"-fold to {info.file_size:,} bytes (weights hardly compress): a decompression bomb? "
                                "Nothing was decompressed.")
                with archive.open(info) as member:
                    arrays[name] = _read_npy(member, info, path)
            stored = sum(array.size for name, array in arrays.items() if name.startswith(("param_", "state_")))
            if parameters > stored:  # before Sequential.build allocates them: the file cannot fill such a model
                _fail(path, f"the architecture has {parameters:,} weights but the file holds {stored:,}: it was saved "
                            "from a different architecture, or is damaged.")
            arrays["format"], arrays["architecture"] = np.array(found), np.array(text)
            return architecture, arrays
    except ModelFileError:
        raise
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError, NotImplementedError, RuntimeError,
            KeyError, OverflowError) as error:
        raise ModelFileError(f"{path}: not a readable minicnn model file (corrupted or truncated?): "
                             f"{type(error).__name__}: {error}. Save the model again.") from None


def _read_text(archive, info, path, most):
    """The string of a 0-d unicode .npy member (the format marker, the architecture), at most ``most`` bytes."""
    if info.file_size > most + 1024:
        _fail(path, f"member {info.filename} declares {info.file_size:,} bytes, far more than it ever holds.")
    with archive.open(info) as member:
        array = _read_npy(member, info, path)
    if array.dtype.kind != "U" or array.ndim != 0:
        _fail(path, f"member {info.filename} is not a string (dtype {array.dtype}, shape {array.shape}).")
    return str(array)


def _read_npy(member, info, path):
    version = np.lib.format.read_magic(member)
    if version == (1, 0):
        shape, fortran_order, dtype = np.lib.format.read_array_header_1_0(member)
    elif version == (2, 0):
        shape, fortran_order, dtype = np.lib.format.read_array_header_2_0(member)
    else:
        _fail(path, f"member {info.filename}: .npy version {version} is not one NumPy's savez writes.")
    if dtype.hasobject:
        _fail(path, f"member {info.filename}: holds Python objects (dtype {dtype}); model files never do "
                    "(loading them would need pickle, which minicnn never runs).")
    count = math.prod(shape)
    nbytes = count * dtype.itemsize
    if nbytes > info.file_size:
        _fail(path, f"member {info.filename}: its header declares shape {shape} of {dtype} ({nbytes:,} bytes), more "
                    f"than the {info.file_size:,} bytes the member holds: the file is damaged.")
    buffer = bytearray(nbytes)
    if nbytes and member.readinto(memoryview(buffer)) != nbytes:
        _fail(path, f"member {info.filename}: its data ends early: the file is truncated.")
    array = np.frombuffer(buffer, dtype=dtype, count=count)
    return array.reshape(shape, order="F" if fortran_order else "C")


# ---------------------------------------------------------------- 3: the architecture JSON
def _refuse_constant(name):
    raise ValueError(f"{name} is not a number a model file may hold")


def _finite_float(text):
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text[:40]} overflows a float")
    return value


def _short_int(text):
    if len(text.lstrip("-")) > 30:
        raise ValueError(f"an integer of {len(text)} digits")
    return int(text)


def parse_architecture(text, path, limits=None):
    """The architecture dict from its JSON text, bounded in size and depth."""
    limits = limits or LIMITS
    if len(text) > limits["architecture_bytes"]:
        _fail(path, f"the architecture record has {len(text):,} characters, over the limit of "
                    f"{limits['architecture_bytes']:,}: it is not one minicnn writes.")
    depth = deepest = 0
    in_string = escaped = False
    for character in text:  # the nesting depth before parsing: a RecursionError never happens
        if in_string:
            if escaped:
                escaped = False
            elif character == "\\":
                escaped = True
            elif character == '"':
                in_string = False
            continue
        if character == '"':
            in_string = True
        elif character in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif character in "]}":
            depth -= 1
    if deepest > limits["json_depth"]:
        _fail(path, f"the architecture record nests {deepest} levels deep (limit {limits['json_depth']}).")
    try:
        architecture = json.loads(text, parse_constant=_refuse_constant, parse_float=_finite_float,
                                  parse_int=_short_int)
    except (ValueError, RecursionError) as error:
        raise ModelFileError(f"{path}: the architecture record is damaged ({error}). Save the model again.") from None
    if not isinstance(architecture, dict):
        _fail(path, f"the architecture record is a {type(architecture).__name__}, not an object.")
    return architecture


# ---------------------------------------------------------------- 4: the schema
def _where(path, at):
    return f"{path}: architecture {at}"


def _integer(value, at, path, low, high, none=False):
    if value is None and none:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ModelFileError(f"{_where(path, at)} must be an integer in {low}..{high}, got {value!r:.60}")
    return value


def _number(value, at, path, low, high):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
        raise ModelFileError(f"{_where(path, at)} must be a number in [{low}, {high}], got {value!r:.60}")
    return value


def _string(value, at, path, choices=None, none=False, longest=256):
    if value is None and none:
        return None
    if not isinstance(value, str) or len(value) > longest or (choices is not None and value not in choices):
        expected = f"one of {list(choices)}" if choices is not None else f"a string of at most {longest} characters"
        raise ModelFileError(f"{_where(path, at)} must be {expected}, got {value!r:.60}")
    return value


def _pair(value, at, path, limits):
    items = value if isinstance(value, list) else [value]
    if not 1 <= len(items) <= 2:
        raise ModelFileError(f"{_where(path, at)} must be an integer or a pair of them, got {value!r:.60}")
    for index, item in enumerate(items):
        _integer(item, f"{at}[{index}]", path, 1, limits["window"])


def _plain_value(value, at, path, depth=0):
    """JSON scalars, short lists and small dicts (regularizers) only."""
    if value is None or isinstance(value, (bool, int, float)):
        return
    if isinstance(value, str):
        _string(value, at, path)
    elif isinstance(value, list) and len(value) <= 16 and depth < 3:
        for index, item in enumerate(value):
            _plain_value(item, f"{at}[{index}]", path, depth + 1)
    elif isinstance(value, dict) and len(value) <= 16 and depth < 3:
        for key, item in value.items():
            _string(key, f"{at} key", path, longest=64)
            _plain_value(item, f"{at}.{key}", path, depth + 1)
    else:
        raise ModelFileError(f"{_where(path, at)} is not a setting a layer takes: {value!r:.60}")


LAYER_FIELDS = {  # rules by config key; any other key must be a plain value the layer's constructor accepts
    "units": lambda v, at, path, limits: _integer(v, at, path, 1, limits["units"]),
    "filters": lambda v, at, path, limits: _integer(v, at, path, 1, limits["units"]),
    "kernel_size": _pair, "pool_size": _pair,
    "strides": lambda v, at, path, limits: None if v is None else _pair(v, at, path, limits),
    "padding": lambda v, at, path, limits: _string(v, at, path, ("valid", "same")),
    "rate": lambda v, at, path, limits: _number(v, at, path, 0, 1),
    "momentum": lambda v, at, path, limits: _number(v, at, path, 0, 1),
    "epsilon": lambda v, at, path, limits: _number(v, at, path, 0, 1e6),
    "negative_slope": lambda v, at, path, limits: _number(v, at, path, -1e6, 1e6),
    "name": lambda v, at, path, limits: _string(v, at, path, none=True, longest=128),
    "activation": lambda v, at, path, limits: _string(v, at, path, sorted(ACTIVATION_LAYERS), none=True),
    "seed": lambda v, at, path, limits: _integer(v, at, path, -(2 ** 63), 2 ** 64 - 1, none=True),
    "kernel_initializer": lambda v, at, path, limits: _string(v, at, path, INITIALIZERS),
    "bias_initializer": lambda v, at, path, limits: _string(v, at, path, INITIALIZERS),
}


def parameter_count(layer, input_shape):
    """Numbers ``layer`` will allocate for ``input_shape``, computed without building it (0 for a layer without
    parameters)."""
    channels = input_shape[-1] if input_shape else 0
    if hasattr(layer, "units"):                                            # Dense
        return (channels + 1) * layer.units
    if hasattr(layer, "filters"):                                          # Conv2D
        return (math.prod(layer.kernel_size) * channels + 1) * layer.filters
    if type(layer).__name__ == "BatchNormalization":                       # gamma, beta, moving mean, variance
        return (2 + bool(layer.center) + bool(layer.scale)) * channels
    return 0


def check_architecture(architecture, path, limits=None):
    """The number of parameters the architecture dict will allocate, once its types and ranges are checked and its
    shapes dry-run; else ModelFileError."""
    limits = limits or LIMITS
    _string(architecture.get("name", "sequential"), "name", path, longest=128)
    _string(architecture.get("dtype", "float32"), "dtype", path, ("float32", "float64"))
    _integer(architecture.get("seed", 0), "seed", path, -(2 ** 63), 2 ** 64 - 1, none=True)
    _string(architecture.get("loss", LOSSES[0]), "loss", path, LOSSES)
    _string(architecture.get("engine"), "engine", path, ENGINE_NAMES, none=True)
    _integer(architecture.get("threads"), "threads", path, 1, 1024, none=True)
    shape = architecture.get("input_shape")
    if not isinstance(shape, list) or not 1 <= len(shape) <= 3:
        raise ModelFileError(f"{_where(path, 'input_shape')} must be a list of 1 to 3 sizes, got {shape!r:.60}")
    for index, size in enumerate(shape):
        _integer(size, f"input_shape[{index}]", path, 1, limits["dimension"])
    layers = architecture.get("layers")
    if not isinstance(layers, list) or not 1 <= len(layers) <= limits["layers"]:
        raise ModelFileError(f"{_where(path, 'layers')} must be a list of 1 to {limits['layers']} layers, "
                             f"got {type(layers).__name__}")
    shape, total = tuple(shape), 0
    _check_elements(shape, "input_shape", path, limits)
    for index, entry in enumerate(layers):
        at = f"layers[{index}]"
        if not isinstance(entry, dict) or not isinstance(entry.get("config"), dict):
            raise ModelFileError(f"{_where(path, at)} must be an object {{\"class\": ..., \"config\": {{...}}}}, "
                                 f"got {entry!r:.60}")
        class_name = _string(entry.get("class"), f"{at}.class", path, sorted(LAYER_CLASSES))
        config = entry["config"]
        for key, value in config.items():
            _string(key, f"{at}.config key", path, longest=64)
            rule = LAYER_FIELDS.get(key)
            if rule is not None:
                rule(value, f"{at}.config.{key}", path, limits)
            else:
                _plain_value(value, f"{at}.config.{key}", path)
        try:
            layer = LAYER_CLASSES[class_name](**config)
            total += parameter_count(layer, shape)
            shape = tuple(layer.compute_output_shape(shape))
        except (TypeError, ValueError, KeyError, AttributeError, OverflowError, IndexError, ShapeError) as error:
            raise ModelFileError(f"{_where(path, at)} ({class_name}) cannot be rebuilt: {error}") from None
        if total > limits["parameters"]:
            _fail(path, f"the architecture needs over {total:,} parameters by {at} ({class_name}), over the budget "
                        f"of {limits['parameters']:,} (minicnn.schema.LIMITS['parameters']); nothing was allocated.")
        _check_elements(shape, f"{at} ({class_name}) output", path, limits)
    optimizer = architecture.get("optimizer")
    if optimizer is not None:
        if not isinstance(optimizer, dict) or not isinstance(optimizer.get("config", {}), dict):
            raise ModelFileError(f"{_where(path, 'optimizer')} must be an object, got {optimizer!r:.60}")
        _string(optimizer.get("class"), "optimizer.class", path, longest=64)
        _integer(optimizer.get("iterations", 0), "optimizer.iterations", path, 0, 2 ** 53)
        for key, value in optimizer.get("config", {}).items():
            _string(key, "optimizer.config key", path, longest=64)
            _plain_value(value, f"optimizer.config.{key}", path)
    return total


def _check_elements(shape, at, path, limits):
    if any(not isinstance(size, int) or size < 1 for size in shape) or math.prod(shape) > limits["sample_elements"]:
        _fail(path, f"architecture {at} has shape {shape}: over the limit of {limits['sample_elements']:,} elements "
                    "per sample (or not positive); nothing was allocated.")


# ---------------------------------------------------------------- 5: the arrays
def check_arrays(arrays, path):
    """Refuse weight/state/optimizer arrays that are not real floating-point, or not finite, and names that are
    not exactly ``param_000``-style."""
    for name, array in arrays.items():
        prefix = next((p for p in ARRAY_PREFIXES if name.startswith(p)), None)
        if prefix is None:
            continue
        suffix = name[len(prefix):]
        if prefix != "optimizer_" and not re.fullmatch(r"\d{3,}", suffix) or (suffix.isdigit() and
                                                                                 suffix != f"{int(suffix):03d}"):
            _fail(path, f"array {name!r} is not named as minicnn names them ({prefix}000, {prefix}001, ...).")
        if array.dtype.kind != "f":
            _fail(path, f"array {name} has dtype {array.dtype}: weights and optimizer state must be real floating-point "
                        "numbers (complex or integer arrays are refused, not cast).")
        if not np.isfinite(array).all():
            _fail(path, f"array {name} contains {int((~np.isfinite(array)).sum())} NaN or infinite value(s).")
