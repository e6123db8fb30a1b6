"""Callbacks for ``fit``, as in Keras: objects that look at the model at the start and end of every epoch.

A callback may define ``on_train_begin(model)``, ``on_epoch_begin(model, epoch)``,
``on_train_batch_end(model, batch, logs)``, ``on_epoch_end(model, epoch, logs)`` and ``on_train_end(model, logs)``
(Keras's hooks, with the model passed in); an ``on_epoch_end`` that returns True (or sets
``model.stop_training = True``) stops training. ``logs`` holds the epoch's "loss", "accuracy" and, with
validation data, "val_loss" and "val_accuracy". The two learning-rate callbacks add "learning_rate" (the rate
that epoch trained with), as Keras's do, so it lands in ``history.history["learning_rate"]``.

Also as in Keras: ``EarlyStopping``, ``ModelCheckpoint`` (every file a training checkpoint that
``minicnn.load_model`` loads ready to continue) and ``CSVLogger``. tests/test_callbacks.py drives each with
scripted loss curves, next to Keras's own callbacks.
"""
from __future__ import annotations

import math
import sys


class LearningRateScheduler:
    """Set the learning rate at the start of each epoch: ``schedule(epoch, current_lr) -> new_lr``.

        LearningRateScheduler(lambda epoch, lr: 1e-3 * 0.5 ** epoch)     # halve it every epoch
    """

    def __init__(self, schedule, verbose=False):
        self.schedule = schedule
        self.verbose = verbose

    def on_epoch_begin(self, model, epoch):
        new = float(self.schedule(epoch, model.optimizer.learning_rate))
        if not new > 0 or not math.isfinite(new):
            raise ValueError(f"the learning-rate schedule returned {new} for epoch {epoch}")
        if self.verbose and new != model.optimizer.learning_rate:
            print(f"Epoch {epoch + 1}: learning rate {new:.3g}", file=sys.stderr)  # progress, as fit's
        model.optimizer.learning_rate = new

    def on_epoch_end(self, model, epoch, logs):
        logs["learning_rate"] = float(model.optimizer.learning_rate)
        return False


class ReduceLROnPlateau:
    """Multiply the learning rate by ``factor`` when ``monitor`` has not improved for ``patience`` epochs
    (Keras's callback of the same name; "improved" means lower for losses, higher for accuracies)."""

    def __init__(self, monitor="val_loss", factor=0.5, patience=2, min_lr=1e-6, min_delta=1e-4, verbose=True):
        if not 0 < factor < 1:
            raise ValueError(f"factor must be between 0 and 1, got {factor}")
        self.monitor = monitor
        self.factor = factor
        self.patience = patience
        self.min_lr = min_lr
        self.min_delta = min_delta
        self.verbose = verbose
        self.lower_is_better = "acc" not in monitor
        self.best = None
        self.waited = 0

    def on_epoch_end(self, model, epoch, logs):
        logs["learning_rate"] = float(model.optimizer.learning_rate)  # the rate this epoch trained with
        if self.monitor not in logs:
            raise KeyError(f"ReduceLROnPlateau watches {self.monitor!r}, which fit did not report "
                           f"(it reported {sorted(logs)}); pass validation data or monitor 'loss'")
        value = logs[self.monitor]
        sign = 1 if self.lower_is_better else -1
        if self.best is None or sign * (self.best - value) > self.min_delta:
            self.best, self.waited = value, 0
            return False
        self.waited += 1
        if self.waited >= self.patience and model.optimizer.learning_rate > self.min_lr:
            model.optimizer.learning_rate = max(model.optimizer.learning_rate * self.factor, self.min_lr)
            self.waited = 0
            if self.verbose:
                print(f"Epoch {epoch + 1}: {self.monitor} did not improve; learning rate now "
                      f"{model.optimizer.learning_rate:.3g}", file=sys.stderr)
        return False


def improvement_test(monitor, mode, min_delta, what):
    """Keras's MonitorCallback: (is_improvement(value, reference), mode) with "auto" read from the name: lower is
    better for losses, higher for accuracies; an improvement must beat the reference by more than min_delta."""
    if mode not in ("auto", "min", "max"):
        raise ValueError(f"{what} mode must be 'auto', 'min' or 'max', got {mode!r}")
    if mode == "auto":
        name = monitor.removeprefix("val_")
        if name == "loss":
            mode = "min"
        elif name in ("accuracy", "acc"):
            mode = "max"
        else:
            raise ValueError(f"{what} cannot tell whether {monitor!r} should go up or down: pass mode='min' or "
                             "mode='max'")
    delta = abs(min_delta)
    if mode == "min":
        return (lambda value, reference: reference is None or value + delta < reference), mode
    return (lambda value, reference: reference is None or value - delta > reference), mode


class EarlyStopping:
    """Stop training when ``monitor`` has stopped improving, as ``keras.callbacks.EarlyStopping``.

    ``EarlyStopping(monitor="val_loss", min_delta=0, patience=0, verbose=0, mode="auto", baseline=None,
    restore_best_weights=False, start_from_epoch=0)``: after each epoch, a value better than the best so far by
    more than ``min_delta`` (and better than ``baseline``, if given) resets the wait; otherwise the wait grows, and
    training stops once it reaches ``patience`` (never after the first epoch). ``restore_best_weights``: at the end
    of training, put back the weights of the best epoch (the first epoch's if none improved). ``stopped_epoch``
    and ``best_epoch`` tell what happened (0-based, as Keras)."""

    def __init__(self, monitor="val_loss", min_delta=0, patience=0, verbose=0, mode="auto", baseline=None,
                 restore_best_weights=False, start_from_epoch=0):
        self.monitor = monitor
        self.min_delta = abs(min_delta)
        self.patience = patience
        self.verbose = verbose
        self.baseline = baseline
        self.restore_best_weights = restore_best_weights
        self.start_from_epoch = start_from_epoch
        self.is_improvement, self.mode = improvement_test(monitor, mode, min_delta, "EarlyStopping")
        self.on_train_begin(None)

    def on_train_begin(self, model):
        self.wait, self.stopped_epoch, self.best, self.best_weights, self.best_epoch = 0, 0, None, None, 0

    def on_epoch_end(self, model, epoch, logs):
        current = logs.get(self.monitor)
        if current is None:
            print(f"warning: EarlyStopping watches {self.monitor!r}, which fit did not report (it reported "
                  f"{sorted(logs)})", file=sys.stderr)
            return False
        if epoch < self.start_from_epoch:
            return False
        if self.restore_best_weights and self.best_weights is None:
            self.best_weights, self.best_epoch = model.get_weights(), epoch
        self.wait += 1
        if self.is_improvement(current, self.best):
            self.best, self.best_epoch = current, epoch
            if self.restore_best_weights:
                self.best_weights = model.get_weights()
            if self.baseline is None or self.is_improvement(current, self.baseline):
                self.wait = 0
            return False
        if self.wait >= self.patience and epoch > 0:
            self.stopped_epoch = epoch
            return True
        return False

    def on_train_end(self, model, logs):
        if self.stopped_epoch > 0 and self.verbose:
            print(f"Epoch {self.stopped_epoch + 1}: early stopping", file=sys.stderr)
        if self.restore_best_weights and self.best_weights is not None:
            if self.verbose:
                print(f"Restoring model weights from the end of the best epoch: {self.best_epoch + 1}.",
                      file=sys.stderr)
            model.set_weights(self.best_weights)


class ModelCheckpoint:
    """Save the model during training, as ``keras.callbacks.ModelCheckpoint``; every file is a full training
    checkpoint (``Sequential.save_checkpoint``: weights, optimizer state, epoch and step, seeds), which
    ``minicnn.load_model`` loads ready to continue.

    ``ModelCheckpoint(filepath, monitor="val_loss", verbose=0, save_best_only=False, mode="auto",
    save_freq="epoch", initial_value_threshold=None)``: ``filepath`` (an .npz file) may hold ``{epoch}`` (1-based,
    as Keras), ``{batch}`` (with an integer save_freq) and the epoch's metrics, e.g.
    ``"ckpt-{epoch:02d}-{val_loss:.2f}.npz"``. ``save_freq="epoch"`` saves after every epoch, an integer N after
    every N training steps. ``save_best_only``: only when ``monitor`` improved on the best so far (and on
    ``initial_value_threshold``). Every write is atomic and verified: an existing file is only ever replaced by a
    complete one."""

    def __init__(self, filepath, monitor="val_loss", verbose=0, save_best_only=False, mode="auto", save_freq="epoch",
                 initial_value_threshold=None):
        self.filepath = str(filepath)
        if not self.filepath.endswith(".npz"):
            raise ValueError(f"ModelCheckpoint filepath must end in .npz (minicnn's model files), got {filepath!r}")
        if save_freq != "epoch" and (isinstance(save_freq, bool) or not isinstance(save_freq, int) or save_freq < 1):
            raise ValueError(f"save_freq must be 'epoch' or a positive number of steps, got {save_freq!r}")
        self.monitor = monitor
        self.verbose = verbose
        self.save_best_only = save_best_only
        self.save_freq = save_freq
        self.is_improvement, self.mode = improvement_test(monitor, mode, 0, "ModelCheckpoint")
        self.best = initial_value_threshold
        self.steps_since_save = 0
        self.epoch = 0
        self.last_saved = None

    def on_epoch_begin(self, model, epoch):
        self.epoch = epoch

    def on_train_batch_end(self, model, batch, logs):
        if self.save_freq == "epoch":
            return
        self.steps_since_save += 1
        if self.steps_since_save >= self.save_freq:
            self.steps_since_save = 0
            self.save(model, self.epoch, logs, batch)

    def on_epoch_end(self, model, epoch, logs):
        if self.save_freq == "epoch":
            self.save(model, epoch, logs)
        return False

    def save(self, model, epoch, logs, batch=None):
        if self.save_best_only:
            current = logs.get(self.monitor)
            if current is None:
                print(f"warning: ModelCheckpoint can save the best model only with {self.monitor!r} available; "
                      f"fit reported {sorted(logs)}: skipping", file=sys.stderr)
                return
            if not self.is_improvement(current, self.best):
                return
            self.best = current
        try:
            path = self.filepath.format(epoch=epoch + 1, **({} if batch is None else {"batch": batch + 1}), **logs)
        except KeyError as error:
            raise KeyError(f"ModelCheckpoint filepath {self.filepath!r} names {error}, which is not among the "
                           f"metrics fit reported ({sorted(logs)})") from None
        self.last_saved = model.save_checkpoint(path)
        if self.verbose:
            print(f"Epoch {epoch + 1}: saved a checkpoint to {path}", file=sys.stderr)


class CSVLogger:
    """Write each epoch's logs as a row of a CSV file, as ``keras.callbacks.CSVLogger``:
    ``CSVLogger(filename, separator=",", append=False)``. As Keras's: the header is "epoch" then the metric names in
    alphabetical order (with val_ columns, "NA", when there is no validation data), rows end in CR LF (the csv
    module's "excel" dialect); ``append=True`` adds rows to an existing file without a second header (a resumed
    run)."""

    def __init__(self, filename, separator=",", append=False):
        self.filename = str(filename)
        self.separator = separator
        self.append = append
        self.keys = None
        self.append_header = True

    def on_train_begin(self, model):
        import os

        if self.append and os.path.exists(self.filename):
            with open(self.filename) as file:
                self.append_header = not file.readline()
        else:
            self.append_header = True
            open(self.filename, "w").close()
        self.keys = None

    def on_epoch_end(self, model, epoch, logs):
        import csv

        if self.keys is None:
            self.keys = sorted(logs)
            if self.keys and not any(key.startswith("val_") for key in self.keys):
                self.keys += [f"val_{key}" for key in self.keys]
        with open(self.filename, "a", newline="") as file:
            writer = csv.writer(file, dialect="excel", delimiter=self.separator)
            if self.append_header:
                writer.writerow(["epoch", *self.keys])
                self.append_header = False
            writer.writerow([epoch, *(logs.get(key, "NA") for key in self.keys)])
        return False
