"""Saving and loading models: one .npz file, no pickle, written atomically.

Inside the file (a zip of .npy arrays, readable with ``np.load(path, allow_pickle=False)``):

* ``format``: the string "minicnn-model-1"
* ``architecture``: JSON text of ``model.get_config()`` plus the optimizer's class, settings and step count
* ``param_000``, ``param_001``, ...: the weights, in ``model.parameters()`` order (Keras layouts)
* ``state_000``, ...: the non-trainable arrays (BatchNormalization's moving mean and variance), in
  ``model.states()`` order
* ``optimizer_<name>``: the optimizer's flat state arrays (Adam's m and v), if saved

A training checkpoint (``Sequential.save_checkpoint``, ``save_model(..., checkpoint={...})``) is the same file
with a "checkpoint" record in the architecture JSON: the epoch and step to continue at, the steps per epoch, batch
size, number of training samples and shuffle seed of the run, the running loss/accuracy sums of the unfinished
epoch and the history so far. Together with the optimizer's state (always saved in a checkpoint: Adam's m, v and
step count, and its learning rate in its settings), the non-trainable state and the layers' seeds (in their
configs), that is everything fit needs to continue bit for bit (its random draws depend on the seeds, the epoch
and the step only). A checkpoint is verified before it replaces the previous one: every weight finite, and the
temporary file read back equal to what was meant to be written.

``save_model(..., metadata={...})`` stores a JSON-able dict (train.py: when and on which data the model was
trained) under the architecture's "metadata" key; ``load_model`` hands it back as ``model.metadata``.

Loading never executes code from the file: the JSON only names layer classes from a fixed list
(``Sequential.from_config``; ``minicnn.load_model`` is in minicnn/model.py). This module knows the file format
only: it never imports the model.
The file is first written to a temporary file beside the target and then renamed over it, so an interrupted
save never leaves a half-written model behind (and never destroys the previous one).
"""
from __future__ import annotations

import json
import os
import secrets
import zipfile
from pathlib import Path

import numpy as np

from minicnn import schema
from minicnn.errors import ModelFileError

FORMAT = "minicnn-model-1"


def save_model(model, path, include_optimizer=True, metadata=None, checkpoint=None):
    if not model.built:
        model.build()
    path = Path(path)
    if path.suffix != ".npz":
        path = path.with_name(path.name + ".npz")  # np.savez would append it anyway; be explicit
    refuse_non_finite(model)
    architecture = model.get_config()
    arrays = {f"param_{index:03d}": p.value for index, p in enumerate(model.parameters())}
    arrays.update({f"state_{index:03d}": s.value for index, s in enumerate(model.states())})
    optimizer = model.optimizer
    if include_optimizer and optimizer is not None and optimizer.state_arrays()[0] is not None:
        architecture["optimizer"] = {"class": type(optimizer).__name__, "config": optimizer.get_config(),
                                     "iterations": optimizer.iterations}
        for name, array in zip(optimizer.state_names, optimizer.state_arrays()):
            arrays[f"optimizer_{name}"] = array
    if metadata is not None:
        architecture["metadata"] = metadata
    if checkpoint is not None:
        if "optimizer" not in architecture:
            raise ModelFileError(f"{path}: a checkpoint needs the optimizer's state: compile and train the model first")
        for name, array in arrays.items():
            if not np.all(np.isfinite(array)):
                raise ModelFileError(f"{path}: not saving a checkpoint whose {name} contains NaN or infinity; the "
                                     "previous checkpoint is kept")
        architecture["checkpoint"] = checkpoint
    arrays["format"] = np.array(FORMAT)
    arrays["architecture"] = np.array(json.dumps(architecture))
    write_npz_atomically(path, arrays, verify=checkpoint is not None)
    return path


def refuse_non_finite(model):
    """ModelFileError, before anything is written, if a weight, state or optimizer array holds NaN or infinity:
    ``load_model`` would refuse the file, and the previous good file must not be replaced by it."""
    named = [(f"{layer.name}/{p.name}", p.value) for layer in model.layers for p in (*layer.parameters(), *layer.state())]
    if model.optimizer is not None and model.optimizer.state_arrays() and model.optimizer.state_arrays()[0] is not None:
        named += [(f"optimizer {name}", array) for name, array in zip(model.optimizer.state_names,
                                                                        model.optimizer.state_arrays())]
    bad = [name for name, array in named if not np.isfinite(array).all()]
    if bad:
        raise ModelFileError(f"not saving: {', '.join(bad[:5])}{' ...' if len(bad) > 5 else ''} hold(s) NaN or "
                             "infinity (training diverged?); a model file never holds them. Nothing was written.")


def check_checkpoint(architecture, arrays, path, model):
    """The checkpoint record of a model file loaded into ``model``, once checked to be complete: the optimizer's
    state is there and fits, the numbers are sane. A ModelFileError names what is missing."""
    checkpoint = architecture["checkpoint"]
    needed = ("epoch", "step", "steps_per_epoch", "batch_size", "samples", "seed", "loss_total", "correct_total",
              "seen", "history")
    missing = [key for key in needed if not isinstance(checkpoint, dict) or key not in checkpoint]
    if missing:
        raise ModelFileError(f"{path}: the checkpoint record is damaged (missing {', '.join(missing)}).")
    optimizer = model.optimizer
    if optimizer is None or any(arrays.get(f"optimizer_{name}") is None for name in optimizer.state_names):
        raise ModelFileError(f"{path}: the checkpoint has no optimizer state, so training cannot continue exactly.")
    if optimizer.iterations != architecture["optimizer"].get("iterations") or any(
            getattr(optimizer, name).shape != arrays[f"optimizer_{name}"].shape for name in optimizer.state_names):
        raise ModelFileError(f"{path}: the checkpoint's optimizer state does not fit the model: it was saved from a "
                             "different architecture.")
    if not 0 <= checkpoint["step"] <= checkpoint["steps_per_epoch"] or checkpoint["epoch"] < 0:
        raise ModelFileError(f"{path}: the checkpoint's position (epoch {checkpoint['epoch']}, step "
                             f"{checkpoint['step']}) is impossible: the file is damaged.")
    return checkpoint


def write_npz_atomically(path, arrays, verify=False):
    """np.savez into a temporary file in the same folder, flushed to disk, then renamed onto ``path``. With
    ``verify``, the temporary file is first read back and compared with ``arrays``: a file that does not read
    back the same (a full disk, a failing device) never replaces the previous one.

    The file gets the permissions of any new file (0666 minus the umask), not mkstemp's 0600."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    while True:
        temporary = str(path.parent / f".{path.name}.{secrets.token_hex(4)}.tmp")
        try:
            handle = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
            break
        except FileExistsError:
            continue
    try:
        with os.fdopen(handle, "wb") as file:
            np.savez(file, **arrays)
            file.flush()
            os.fsync(file.fileno())
        if verify:
            verify_npz(temporary, arrays, path)
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.remove(temporary)
        raise


def verify_npz(written, arrays, path):
    """Raise ModelFileError unless the .npz file ``written`` holds exactly ``arrays``."""
    try:
        with np.load(written, allow_pickle=False) as archive:
            same = sorted(archive.files) == sorted(arrays) and all(
                np.array_equal(archive[name], np.asarray(array)) for name, array in arrays.items())
    except (zipfile.BadZipFile, ValueError, OSError, EOFError, KeyError):
        same = False
    if not same:
        raise ModelFileError(f"{path}: the new file did not read back as written; the previous one is kept.")


def read_model_file(path):
    """(architecture dict, {name: array}) from a model file, or a ModelFileError that says what is wrong."""
    path = Path(path)
    if not path.exists():
        raise ModelFileError(f"{path}: no such model file. Train one with `python train.py --save {path}`.")
    if not path.is_file():
        raise ModelFileError(f"{path}: not a file (a folder?). Give the path of a .npz model file.")
    # Every check of the format (sizes before decompression, .npy headers before data, the architecture's schema
    # and size budget, real finite arrays) is in minicnn/schema.py.
    architecture, arrays = schema.read_model_archive(path, FORMAT)
    schema.check_arrays(arrays, path)
    return architecture, arrays


def assign_weights(model, arrays, path):
    """Copy the file's param_### (and state_###) arrays into the model's parameters (and non-trainable state),
    checking count, shapes and finiteness."""
    for prefix, what, parameters in (("param_", "weight", model.parameters()),
                                     ("state_", "non-trainable", model.states())):
        stored = sorted(name for name in arrays if name.startswith(prefix))
        expected = [f"{prefix}{index:03d}" for index in range(len(parameters))]
        if len(stored) == len(parameters) and stored != expected:
            raise ModelFileError(f"{path}: the {what} arrays are named {stored[:4]}..., not {expected[:4]}...: "
                                 "the file is damaged or not minicnn's.")
        if len(stored) != len(parameters):
            raise ModelFileError(f"{path}: the file holds {len(stored)} {what} arrays, the model has "
                                 f"{len(parameters)}: it was saved from a different architecture.")
        for index, parameter in enumerate(parameters):
            array = arrays[f"{prefix}{index:03d}"]
            if array.shape != parameter.shape:
                raise ModelFileError(f"{path}: {what} {index} ({parameter.name}) has shape {array.shape} in the file "
                                     f"but {parameter.shape} in the model: it was saved from a different architecture.")
            if not np.all(np.isfinite(array)):
                raise ModelFileError(f"{path}: {what} {index} ({parameter.name}) contains NaN or infinity.")
            parameter.value[...] = array
