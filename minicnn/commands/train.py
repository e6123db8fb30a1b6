"""``minicnn train`` (and ``python train.py``): train a CNN on MNIST or Fashion-MNIST, evaluate it, save it.

    minicnn train                      # the default CNN, reaches 99% on MNIST
    minicnn train --model seed         # the student reports' seed CNN
    minicnn train --engine reference   # the same on the reference engine (the layer files, slowly)
    minicnn train --help               # every option

Prints the model summary and the fast engine's plan, progress per epoch (stderr), the test accuracy, a confusion
matrix with per-class precision / recall / F1, writes an evaluation report and saves the model (an .npz file: load
it with minicnn.load_model).
"""
from __future__ import annotations

import argparse
import sys
import time
import warnings
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

DEFAULTS = {  # per model: epochs, batch size, learning rate, learning-rate decay per epoch
    "default": (6, 64, 1e-3, 0.6),  # measured: 99.22% on the MNIST test set (seed 0; with its augmentation, below)
    "seed": (8, 32, 1e-3, 0.7),     # measured: 98.80%
    "lenet5": (6, 64, 1e-3, 0.7),
    "mlp": (10, 64, 1e-3, 0.7),
    # The student reports' other models. report001 with these settings, seed 0, full MNIST: 99.55% test accuracy
    # (validation 99.08% after 6 epochs, 99.37% after 12); 303 s per epoch on the shared 2-core machine (194 s at
    # its quietest), two threads.
    "report001": (12, 128, 1e-3, 0.8),  # the report's batch 128; BN + dropout train longer
    "report003": (10, 64, 1e-3, 0.7),   # as mlp
    "report004": (8, 32, 1e-3, 0.7),    # as seed; measured with its ±10° rotation: 98.62%
}
# Seconds Numba takes to compile a model's kernels the first time (empty cache), measured on a quiet 2-core
# Intel Xeon (AVX-512, 2.6 GHz): 5.5, 8.5, 3.3 and 0.7 s. Slower CPUs take longer (issue 9: ~20 s on a 2-core
# AMD EPYC), so train.py also prints the time it really took. (The reports' models: estimated as seed, mlp, seed.)
FIRST_COMPILE_SECONDS = {"default": 6, "seed": 9, "lenet5": 3, "mlp": 1, "report001": 9, "report003": 1, "report004": 9}
# Per model: the augmentation a run uses when --augment is not given (report004 has its rotation built into the
# architecture). The default CNN is the digit pad's and `minicnn predict`'s model: trained on rotated, shifted and
# zoomed digits, it reads drawn digits better (demo/drawn_digits.py) and keeps 99% on MNIST (README, The digit pad).
DEFAULT_AUGMENTATION = {"default": "rotation=15,shift=0.05,zoom=0.1"}
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as a shell reports a program stopped by Ctrl+C

EPILOG = """\
output:
  stdout gets the results: the data used, the model summary, the test accuracy, the confusion matrix with
  per-class precision/recall/F1, where the evaluation report was written and where the model was saved.
  stderr gets progress: a bar per epoch on a terminal, one line per epoch otherwise (so
  `python train.py > results.txt` gives a clean file).

evaluation report:
  reports/<run name>/report.html (e.g. reports/mnist-default/), in the current folder, unless --report DIR
  or --no-report: one self-contained page (opens offline) with the learning curves, confusion matrix,
  per-class precision/recall/F1, the most confident mistakes, the first layer's filters and every layer's
  feature maps, plus its PNGs and report.json with every number. `minicnn report MODEL.npz` writes the same
  for any saved model later (the per-epoch history is saved in the model file).

where models go:
  $MINICNN_MODELS, else $XDG_DATA_HOME/minicnn/models, else ~/.local/share/minicnn/models, as
  <dataset>-<model>.npz (e.g. mnist-default.npz), whichever folder you run from; demo/predict_digit.py looks
  there. The file records when and on which data the model was trained. A run on mnist_loader's bundled
  sample (offline, 10,000 images) saves as ...-sample.npz, so it never replaces a model trained on full MNIST.

first run:
  Numba compiles the kernels the model uses (a few seconds to ~20 s, depending on the model and the CPU);
  train.py says so. They are cached on disk, and later runs load them in a fraction of a second.

Ctrl+C:
  stops training after the current step and saves the model at once as ...-interrupted.npz (the earlier
  model is left alone), then evaluates it on the test set; a second Ctrl+C skips that evaluation.

checkpoints and --resume:
  After every epoch (and with --checkpoint-every N, every N steps) the run is saved to a checkpoint, by default
  <model file>-checkpoint.npz beside the model (e.g. mnist-seed-checkpoint.npz): the weights, Adam's state, the
  epoch and step reached, the learning rate and the seeds, written to a temporary file, read back, and only then
  renamed over the previous checkpoint. If the run is killed (even with kill -9, or the laptop's lid closes for
  good), `--resume` (the same --model/--dataset/--save) or `--resume PATH` continues from the last checkpoint
  with the run's own settings (model, batch size, learning rate, seed, augmentation, --limit, --val-split), and
  ends with exactly the weights the uninterrupted run would have had. --epochs may be raised to train on. A
  checkpoint of another model or a damaged file is refused, with the reason.

exit status:
  0 done, 2 bad option or data problem, 3 the loss became NaN or infinite, 130 stopped by Ctrl+C.
"""


def per_model(index, unit=""):
    return ", ".join(f"{name} {values[index]}{unit}" for name, values in DEFAULTS.items())


HELP = "train a model on MNIST or Fashion-MNIST, report its test accuracy and save it"


def parse_arguments(argv=None, prog=None):
    parser = argparse.ArgumentParser(prog=prog, description=HELP[0].upper() + HELP[1:] + ".", epilog=EPILOG,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser)
    arguments = parser.parse_args(argv)
    check_arguments(parser, arguments)
    return arguments


def add_arguments(parser):
    parser.add_argument("--model", choices=sorted(DEFAULTS), default="default",
                        help="architecture (default: default): 'default' = 2 x [Conv 3x3 + max-pool], Dense 128, "
                             "99.2%% on MNIST (trained on rotated, shifted, zoomed digits for the digit pad); "
                             "'seed' = the student reports' 3 x [Conv 64 3x3 + max-pool], Dense "
                             "64/32/10, 98.8%%; 'lenet5' = LeNet-5 (5x5 convolutions); 'mlp' = no convolutions, "
                             "Dense layers only; the student reports' 'report001' = 5 x [Conv 3x3 + BatchNormalization] "
                             "with max-pools and Dropout 0.3-0.5, Dense 512/256/10 (batch 128), 'report003' = Dense "
                             "128/128 with leaky ReLU (0.2), 'report004' = 'seed' with l2(0.01) on the first "
                             "convolution's kernel and bias")
    parser.add_argument("--epochs", type=int, default=None, metavar="N",
                        help=f"passes over the training images (default, per model: {per_model(0)})")
    parser.add_argument("--batch-size", type=int, default=None, metavar="N",
                        help=f"images per training step, i.e. per weight update (default, per model: {per_model(1)})")
    parser.add_argument("--lr", type=float, default=None, metavar="RATE",
                        help="Adam's learning rate in the first epoch (default: 0.001)")
    parser.add_argument("--lr-decay", type=float, default=None, metavar="FACTOR",
                        help="multiply the learning rate by this after every epoch; 1 keeps it constant "
                             f"(default, per model: {per_model(3)})")
    parser.add_argument("--val-split", type=float, default=0.1, metavar="FRACTION",
                        help="fraction of the training images held out (at random, fixed by --seed) to report "
                             "val_loss/val_accuracy after each epoch; 0 trains on all of them (default: 0.1)")
    parser.add_argument("--dataset", choices=["mnist", "fashion-mnist"], default="mnist",
                        help="MNIST digits or Fashion-MNIST clothes, both 28x28 grayscale in 10 classes "
                             "(default: mnist)")
    parser.add_argument("--data-dir", default=None, metavar="DIR",
                        help="folder with the four IDX files (train-images-idx3-ubyte.gz etc.) or with mnist/ or "
                             "fashion-mnist/ holding them; an error if they are not there. Default: $MINICNN_DATA, "
                             "then the per-user cache (~/.cache/minicnn), then a download into it (about 11 MB), "
                             "then (MNIST only, offline) the bundled 10,000-image sample")
    parser.add_argument("--seed", type=int, default=0,
                        help="seed for the initial weights, the validation split and the shuffling (default: 0)")
    parser.add_argument("--save", default=None, metavar="PATH",
                        help="save the model to this .npz file instead of <models folder>/<dataset>-<model>.npz "
                             "(see 'where models go' below; -sample or -interrupted is added to the name after "
                             "a run on the bundled sample or a Ctrl+C)")
    parser.add_argument("--no-save", action="store_true", help="do not save the model")
    parser.add_argument("--report", default=None, metavar="DIR",
                        help="write the evaluation report (report.html with plots, report.json, PNGs) to DIR "
                             "(default: reports/<run name>/, the run name being the model file's, e.g. "
                             "reports/mnist-default/)")
    parser.add_argument("--no-report", action="store_true", help="do not write the evaluation report")
    parser.add_argument("--quiet", action="store_true",
                        help="print only the test accuracy and where the model was saved (no summary, progress, "
                             "confusion matrix)")
    parser.add_argument("--engine", choices=["fast", "reference", "twins"], default=None,
                        help="what runs the model: 'fast' (the default: fused steps, Numba kernels, two threads), "
                             "'reference' (every layer's own NumPy functions, in order: slow, the code to read) or "
                             "'twins' (the fast plan with each kernel's NumPy twin); default $MINICNN_ENGINE or fast")
    parser.add_argument("--limit", type=int, default=None, metavar="N",
                        help="train on only the first N training images (before the validation split), for quick "
                             "experiments; the test set stays whole")
    parser.add_argument("--augment", default=None, metavar="SPEC",
                        help="random augmentation of the training images (off at test time), e.g. "
                             "'rotation=10,shift=0.1,zoom=0.1': rotation up to ±DEGREES, shift up to ±FRACTION of "
                             "the height and width, zoom in or out up to ±FRACTION (Keras's RandomRotation, "
                             "RandomTranslation, RandomZoom at the start of the model); 'none' for none. Default: "
                             "the model's own (default: " + DEFAULT_AUGMENTATION["default"] + ", for drawn "
                             "digits; report004: rotation=10, built in; the others none)")
    parser.add_argument("--resume", nargs="?", const="latest", default=None, metavar="PATH",
                        help="continue a run from its checkpoint: PATH, or without PATH the run's latest checkpoint "
                             "(see 'checkpoints and --resume' below)")
    parser.add_argument("--checkpoint", default=None, metavar="PATH",
                        help="where the run's checkpoint goes (default: <model file>-checkpoint.npz)")
    parser.add_argument("--checkpoint-every", type=int, default=None, metavar="N",
                        help="also save the checkpoint every N training steps (default: after every epoch only)")


def check_arguments(parser, arguments):
    """What argparse cannot check by itself; parser.error exits with status 2 and the message."""
    for name in ("epochs", "batch_size", "limit", "checkpoint_every"):
        value = getattr(arguments, name)
        if value is not None and value < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1, got {value}")
    if not 0 <= arguments.val_split < 1:
        parser.error(f"--val-split must be in [0, 1), got {arguments.val_split}")
    if arguments.lr is not None and not arguments.lr > 0:
        parser.error(f"--lr must be positive, got {arguments.lr}")
    if arguments.lr_decay is not None and not 0 < arguments.lr_decay <= 1:
        parser.error(f"--lr-decay must be in (0, 1], got {arguments.lr_decay}")
    if getattr(arguments, "augment", None) is not None:
        try:
            augmentation_layers(arguments.augment)
        except ValueError as error:
            parser.error(f"--augment: {error}")


def plural(count, word):
    return f"{count:,} {word}" + ("" if count == 1 else "s")


def save_path(arguments, sample, interrupted):
    """Where this run's model goes: --save or the per-user models folder, marked -sample / -interrupted."""
    from minicnn.paths import model_path

    path = Path(arguments.save) if arguments.save else model_path(arguments.dataset, arguments.model)
    if path.suffix != ".npz":
        path = path.with_name(path.name + ".npz")
    suffix = ("-sample" if sample else "") + ("-interrupted" if interrupted else "")
    return path.with_name(path.stem + suffix + path.suffix).absolute()


def unusable_save_path(path):
    """Why a model file cannot be written at ``path``, or None: the path is a folder, or the nearest existing
    folder on its way is not a folder or not writable (missing folders are fine: saving creates them)."""
    import os

    path = Path(path)
    if path.is_dir():
        return f"{path} is a folder"
    if path.exists() and not os.access(path, os.W_OK):
        return f"{path} exists and is not writable"
    ancestor = path.parent
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        return f"{ancestor} is a file, not a folder"
    if not os.access(ancestor, os.W_OK | os.X_OK):
        return f"the folder {ancestor} is not writable"
    return None


def compile_kernels(model, arguments, x_train, y_train, batch_size, validation, x_test):
    """Before training, run the kernels this run uses once on a throwaway copy of the model, so that Numba's
    first-run compilation happens here, announced, instead of silently inside the first epoch's progress bar.
    Does nothing if every kernel is in Numba's disk cache already."""
    import minicnn
    from minicnn.jitcache import all_kernels, on_first_compile, uncached_kernels

    uncached = uncached_kernels()
    if not uncached:  # all cached (or cannot tell): the first step loads them in well under a second
        return
    first_run = len(uncached) == len(all_kernels())

    def announce():
        if first_run:
            seconds = FIRST_COMPILE_SECONDS[arguments.model]
            print(f"compiling kernels, first run only (about {seconds:g} s)...", end="", file=sys.stderr,
                  flush=True)
        else:
            print("compiling kernels not in Numba's cache yet (new to this model, or changed)...", end="",
                  file=sys.stderr, flush=True)

    copy = model.clone()  # (train_step, not fit: here Ctrl+C should stop the program at once, nothing to save)
    copy.compile(optimizer=minicnn.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy")
    with on_first_compile(announce) as compiling:
        copy.train_step(np.ascontiguousarray(x_train[:batch_size]), y_train[:batch_size].astype(np.int64))
        if validation:
            copy.evaluate(validation[0][:256], validation[1][:256])
        copy.predict(x_test[:256])
    if compiling.started is not None:
        print(f" done in {time.perf_counter() - compiling.started:.1f} s (cached for later runs)", file=sys.stderr,
              flush=True)


def evaluate_until_ctrl_c(model, x_test, ctrl_c, allowed, chunk=1000):
    """The model's predicted classes for x_test, or None once Ctrl+C has been pressed more than ``allowed``
    times (looked at between chunks of images, never inside a kernel)."""
    predictions = []
    for start in range(0, len(x_test), chunk):
        if ctrl_c.presses > allowed:
            return None
        predictions.append(model.predict(x_test[start:start + chunk]).argmax(axis=1))
    return np.concatenate(predictions)


def describe_training(history, seconds):
    """'6 epochs in 74.1 s, 12.3 s per epoch', or for an interrupted run '1 epoch and 312/844 steps in 20.3 s'."""
    epochs = len(history.epoch)
    if history.steps_done is not None:
        done, steps = history.steps_done
        done_text = f"{plural(epochs, 'epoch')} and {done:,}/{steps:,} steps" if epochs else \
            f"{done:,}/{steps:,} steps of epoch 1"
        return f"{done_text} in {seconds:.1f} s"
    if history.interrupted or epochs == 0:
        return f"{plural(epochs, 'epoch')} in {seconds:.1f} s"
    return f"{plural(epochs, 'epoch')} in {seconds:.1f} s, {seconds / epochs:.1f} s per epoch"


def training_record(history, seconds, training_images, batch_size):
    """For the model file's metadata (and the report): the per-epoch history, training time and speed."""
    images = training_images * len(history.epoch)
    if history.steps_done is not None:  # stopped inside an epoch (the last step may have been smaller)
        images += history.steps_done[0] * batch_size
    return {"history": {key: [float(value) for value in values] for key, values in history.history.items()},
            "batch_size": batch_size, "training_seconds": round(seconds, 3),
            "images_per_second": round(images / seconds, 1) if seconds > 0 and images else None}


def write_report(model, x_test, data, metadata, out_dir, model_file, verbose):
    """The evaluation report (minicnn/report.py): progress to stderr, its path to stdout."""
    from minicnn.report import write_report as write

    model.metadata = metadata  # what the report reads the history and training facts from, as from a saved model
    try:
        page = write(model, x_test, data.y_test, out_dir, data=data, model_file=model_file, verbose=verbose)
    except Exception as error:  # (a plotting or disk problem must not cost the trained model: it is saved next)
        print(f"warning: the evaluation report failed ({type(error).__name__}: {error}); the model is saved all the "
              f"same, and `minicnn report MODEL.npz` writes the report later", file=sys.stderr, flush=True)
        return
    print(f"evaluation report: {page}", flush=True)


AUGMENTATIONS = {"rotation": "DEGREES", "shift": "FRACTION", "zoom": "FRACTION"}
RUN_OPTIONS = {"model": "default", "dataset": "mnist", "batch_size": None, "lr": None, "lr_decay": None, "seed": 0,
               "val_split": 0.1, "limit": None, "augment": None}  # what a checkpoint's run keeps (argparse defaults)


def augmentation_layers(spec):
    """'rotation=10,shift=0.1,zoom=0.1' -> [RandomRotation(10/360), RandomTranslation(0.1, 0.1), RandomZoom(0.1)];
    'none' -> []. A ValueError says what is wrong."""
    from minicnn.layers import RandomRotation, RandomTranslation, RandomZoom

    if spec.strip().lower() in ("none", ""):
        return []
    values = {}
    for part in spec.split(","):
        name, _, value = part.partition("=")
        name = name.strip().lower()
        if name not in AUGMENTATIONS or not value:
            raise ValueError(f"{part.strip()!r} is not NAME=VALUE with NAME one of {', '.join(AUGMENTATIONS)} "
                             "(e.g. rotation=10,shift=0.1,zoom=0.1), or 'none'")
        try:
            values[name] = float(value)
        except ValueError:
            raise ValueError(f"{name}={value!r}: not a number") from None
    limits = {"rotation": 180, "shift": 1, "zoom": 0.99}
    for name, value in values.items():
        if not 0 < value <= limits[name]:
            raise ValueError(f"{name} must be in (0, {limits[name]}], got {value:g}")
    layers = []
    if "rotation" in values:
        layers.append(RandomRotation(values["rotation"] / 360))
    if "shift" in values:
        layers.append(RandomTranslation(values["shift"], values["shift"]))
    if "zoom" in values:
        layers.append(RandomZoom(values["zoom"]))
    return layers


def describe_augmentation(model):
    """'rotation ±10°, shift ±0.1, zoom ±0.1' for the model's leading augmentation layers, or 'none'."""
    parts = []
    for layer in model.layers:
        if not getattr(layer, "augments", False):
            break
        name = type(layer).__name__
        if name == "RandomRotation":
            parts.append(f"rotation ±{layer.factor[1] * 360:g}°")
        elif name == "RandomTranslation":
            parts.append(f"shift ±{layer.height_factor[1]:g}")
        else:
            parts.append(f"zoom ±{layer.height_factor[1]:g}")
    return ", ".join(parts) or "none"


def checkpoint_path(arguments, sample):
    """Where this run's checkpoint goes: --checkpoint, else beside the model file, ...-checkpoint.npz."""
    if arguments.checkpoint:
        path = Path(arguments.checkpoint)
        return (path if path.suffix == ".npz" else path.with_name(path.name + ".npz")).absolute()
    path = save_path(arguments, sample, False)
    return path.with_name(path.stem + "-checkpoint.npz")


class RunCheckpoint:
    """Save the run's checkpoint after every epoch and every ``every`` steps (global steps), with the run's settings
    in its metadata (what --resume reads back)."""

    def __init__(self, path, metadata, every=None):
        self.path, self.metadata, self.every = path, metadata, every

    def on_train_batch_end(self, model, batch, logs):
        progress = model.training_progress
        if self.every and (progress["epoch"] * progress["steps_per_epoch"] + progress["step"]) % self.every == 0 \
                and progress["step"] < progress["steps_per_epoch"]:  # (the epoch's end saves anyway)
            model.save_checkpoint(self.path, metadata=self.metadata)

    def on_epoch_end(self, model, epoch, logs):
        model.save_checkpoint(self.path, metadata=self.metadata)
        return False


def resume_run(arguments, path):
    """The model loaded from a checkpoint, with ``arguments`` set to the run's recorded settings; or an error message
    (a string) when the checkpoint cannot continue this run."""
    import minicnn

    try:
        model = minicnn.load_model(path, engine=arguments.engine)
    except minicnn.ModelFileError as error:
        return f"cannot resume: {error}"
    point, run = model.resume_point, (model.metadata or {}).get("run")
    if point is None or run is None:
        return f"cannot resume from {path}: it is a model file, not a train.py checkpoint (no checkpoint record)"
    for name, default in RUN_OPTIONS.items():
        given = getattr(arguments, name)
        if given != default and given != run.get(name):
            return (f"cannot resume from {path}: it is a checkpoint of a run with --{name.replace('_', '-')} "
                    f"{run.get(name)}, not {given}. Leave the option out (a resumed run keeps its settings) or "
                    "start a new run without --resume.")
    for name in RUN_OPTIONS:
        setattr(arguments, name, run.get(name))
    expected = minicnn.ARCHITECTURES[arguments.model](input_shape=model.input_shape, seed=arguments.seed)
    if arguments.augment is not None:
        from minicnn.architectures import with_augmentation

        expected = with_augmentation(expected, augmentation_layers(arguments.augment))
    shapes = [w.shape for w in expected.get_weights()]
    if [layer["class"] for layer in expected.get_config()["layers"]] != \
            [layer["class"] for layer in model.get_config()["layers"]] or shapes != [w.shape for w in model.get_weights()]:
        return (f"cannot resume from {path}: its model is not train.py's --model {arguments.model}: the checkpoint "
                "is of another architecture")
    return model


def main(argv=None, prog=None):
    """``python train.py [options]``."""
    return train_and_report(parse_arguments(argv, prog))


def run(arguments):
    """``minicnn train [options]`` (minicnn/cli.py hands over the subcommand's parser as ``arguments.parser``)."""
    check_arguments(arguments.parser, arguments)
    return train_and_report(arguments)


def train_and_report(arguments):
    """Everything after the options, with Ctrl+C before training answered by exit status 130."""
    try:
        return train(arguments)
    except KeyboardInterrupt:
        pass
    except SystemError as error:  # a Ctrl+C that landed inside a Numba kernel (while compiling, say)
        if not isinstance(error.__context__ or error.__cause__, KeyboardInterrupt):
            raise
    print(f"\nstopped by Ctrl+C before training started; nothing was saved (exit status {EXIT_INTERRUPTED})",
          file=sys.stderr)
    return EXIT_INTERRUPTED


def train(arguments):
    import minicnn
    import mnist_loader
    from minicnn.history import CtrlC
    from minicnn.metrics import classification_report, confusion_matrix, format_confusion_matrix
    from minicnn.serialization import save_model

    resumed = None
    if arguments.resume:
        path = Path(arguments.resume).absolute()
        if arguments.resume == "latest":  # the run's checkpoint: the full-data one, else the bundled sample's
            path = checkpoint_path(arguments, False)
            if not path.exists() and checkpoint_path(arguments, True).exists():
                path = checkpoint_path(arguments, True)
        resumed = resume_run(arguments, path)
        if isinstance(resumed, str):
            print(f"error: {resumed}", file=sys.stderr)
            return 2
    epochs, batch_size, learning_rate, decay = DEFAULTS[arguments.model]
    if resumed is not None and resumed.resume_point.get("epochs"):
        epochs = resumed.resume_point["epochs"]  # the run's own number of epochs (unless --epochs changes it)
    epochs = arguments.epochs or epochs
    batch_size = arguments.batch_size or batch_size
    learning_rate = arguments.lr or learning_rate
    decay = arguments.lr_decay or decay
    say = (lambda *parts, **options: None) if arguments.quiet else print
    problem = None if arguments.no_save else unusable_save_path(save_path(arguments, False, False))
    if problem:  # before the data is loaded and the model trained: a model that cannot be saved would be lost
        print(f"error: cannot save the model: {problem}. Pass another --save PATH (or --no-save).", file=sys.stderr)
        return 2

    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", mnist_loader.SampleDataWarning)
            data = mnist_loader.load_dataset(arguments.dataset, data_dir=arguments.data_dir,
                                             verbose=not arguments.quiet, report_source=False)
    except mnist_loader.DatasetError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    for warning in caught:  # (without the warnings module's "file:line:" and source line)
        print(f"warning: {warning.message}", file=sys.stderr, flush=True)
    say(f"data: {data.describe()}")
    x_train = mnist_loader.to_float32(data.x_train, add_channel_axis=True)
    y_train = data.y_train
    if arguments.limit:
        x_train, y_train = x_train[:arguments.limit], y_train[:arguments.limit]
    x_test = mnist_loader.to_float32(data.x_test, add_channel_axis=True)
    validation = None
    if arguments.val_split > 0:
        (x_train, y_train), validation = mnist_loader.train_val_split(x_train, y_train, arguments.val_split,
                                                                      seed=arguments.seed)

    if resumed is not None:
        model = resumed
        initial_epoch = model.resume_point["epoch"]
        if model.resume_point["samples"] != len(x_train):
            print(f"error: the checkpoint's run trained on {model.resume_point['samples']:,} images, this data gives "
                  f"{len(x_train):,} ({data.describe()}): resume where the same data is found (--data-dir)",
                  file=sys.stderr)
            return 2
        if initial_epoch >= epochs:
            print(f"error: the checkpoint's run has finished its {plural(epochs, 'epoch')}; pass a larger --epochs "
                  "to train on", file=sys.stderr)
            return 2
    else:
        if arguments.augment is None:  # the model's default augmentation, recorded as the run's (for --resume)
            arguments.augment = DEFAULT_AUGMENTATION.get(arguments.model)
        model = minicnn.ARCHITECTURES[arguments.model](input_shape=x_train.shape[1:], seed=arguments.seed,
                                                       engine=arguments.engine)
        if arguments.augment is not None:
            from minicnn.architectures import with_augmentation

            model = with_augmentation(model, augmentation_layers(arguments.augment))
        model.compile(optimizer=minicnn.optimizers.Adam(learning_rate), loss="sparse_categorical_crossentropy")
        initial_epoch = 0
    if not arguments.quiet:
        model.summary(batch_size=batch_size)  # (the plan for the batches this run trains on)
    held_out = f" ({len(validation[0]):,} held out for validation)" if validation else ""
    say(f"training on {plural(len(x_train), 'image')}{held_out} for {plural(epochs, 'epoch')}, batch {batch_size}, "
        f"Adam lr {learning_rate} x {decay} per epoch, augmentation: {describe_augmentation(model)}, "
        f"{model.engine} engine")
    if resumed is not None:
        say(f"resuming from {path} at epoch {initial_epoch + 1}, step {model.resume_point['step']}")
    if model.engine == "fast" and not arguments.quiet:
        compile_kernels(model, arguments, x_train, y_train, batch_size, validation, x_test)
    schedule = minicnn.callbacks.LearningRateScheduler(lambda epoch, lr: learning_rate * decay ** epoch)
    callbacks = [schedule]
    checkpoint = None
    if not arguments.no_save or arguments.checkpoint:
        run = {name: getattr(arguments, name) for name in RUN_OPTIONS}
        checkpoint = RunCheckpoint(checkpoint_path(arguments, data.is_sample), {"run": run},
                                   arguments.checkpoint_every)
        callbacks.append(checkpoint)

    # From here on Ctrl+C only counts presses (fit shares this listener): the model is saved, never lost.
    ctrl_c = CtrlC().start()
    try:
        started = time.perf_counter()
        try:
            history = model.fit(x_train, y_train, epochs=epochs, batch_size=batch_size, validation_data=validation,
                                seed=arguments.seed, verbose=0 if arguments.quiet else 1, callbacks=callbacks,
                                initial_epoch=initial_epoch)
        except minicnn.NonFiniteLossError as error:
            print(f"error: {error}", file=sys.stderr)
            return 3
        seconds = time.perf_counter() - started
        training = describe_training(history, seconds)
        metadata = {"trained_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                    "dataset": arguments.dataset, "data": data.describe(), "data_source": data.source,
                    "sample": data.is_sample, "model": arguments.model, "epochs": len(history.epoch),
                    "training_images": len(x_train), "interrupted": history.interrupted, "training": training,
                    **training_record(history, seconds, len(x_train), batch_size),
                    "augmentation": describe_augmentation(model)}
        if resumed is not None:  # the whole run's history, and where this process took it up
            metadata.update(epochs=initial_epoch + len(history.epoch), history=model.full_history(),
                            resumed_from={"path": str(path), "epoch": initial_epoch,
                                          "step": resumed.resume_point["step"]})
        if history.interrupted and checkpoint is not None and model.training_progress is not None:
            model.save_checkpoint(checkpoint.path, metadata=checkpoint.metadata)  # --resume continues from here
            say(f"saved a checkpoint to {checkpoint.path} (--resume continues from it)")
        path = save_path(arguments, data.is_sample, history.interrupted)
        on_sample = (f" (trained on the bundled {len(data.x_train):,}-image sample, not full "
                     f"{data.spec.title})") if data.is_sample else ""
        saved = None

        def save():
            try:
                saved_to = save_model(model, path, metadata=metadata)
            except OSError as error:  # the folder went away or the disk filled during training: keep the model
                import tempfile
                saved_to = save_model(model, Path(tempfile.gettempdir()) / path.name, metadata=metadata)
                print(f"warning: could not save to {path} ({error}); saved to {saved_to} instead", file=sys.stderr)
            print(f"saved the model to {saved_to}{on_sample}", flush=True)
            return saved_to

        if ctrl_c.presses and not arguments.no_save:  # stopped: save first, then evaluate if allowed
            saved = save()
        allowed = 1 if ctrl_c.presses else 0  # a second Ctrl+C (or a first one from now on) skips the evaluation
        if ctrl_c.presses == 1:
            print("evaluating it on the test set (Ctrl+C again to skip)", file=sys.stderr, flush=True)
        predictions = evaluate_until_ctrl_c(model, x_test, ctrl_c, allowed)
        test_set = f"{len(x_test):,} {data.spec.title} test images" + (" of the sample" if data.is_sample else "")
        if predictions is None:
            print(f"test accuracy: not measured (Ctrl+C); trained {training}", flush=True)
        else:
            accuracy = float((predictions == data.y_test).mean())
            metadata["test_accuracy"] = round(accuracy, 6)
            arguments.outcome = metadata  # what `minicnn grid` reads back
            if not arguments.quiet:
                confusion = confusion_matrix(data.y_test, predictions, model.num_classes)
                print("\nconfusion matrix (rows: true class, columns: predicted class)")
                print(format_confusion_matrix(confusion))
                print()
                print(classification_report(confusion, class_names=data.spec.class_names))
            if not arguments.quiet:
                print()
            if not arguments.no_report:  # here, so that the last lines stay the accuracy and where the model went
                write_report(model, x_test, data, metadata, arguments.report or Path("reports") / path.stem,
                             None if arguments.no_save else path, verbose=not arguments.quiet)
            print(f"test accuracy: {accuracy * 100:.2f}% on {test_set} ({training})", flush=True)
        if saved is None and not arguments.no_save:
            saved = save()
        if ctrl_c.presses:
            print(f"stopped by Ctrl+C (exit status {EXIT_INTERRUPTED})", file=sys.stderr, flush=True)
            return EXIT_INTERRUPTED
        return 0
    finally:
        ctrl_c.stop()


if __name__ == "__main__":
    sys.exit(main(prog="train.py"))
