"""Callbacks for ``fit``, as in Keras: objects that look at the model at the start and end of every epoch.

A callback may define ``on_epoch_begin(model, epoch)`` and ``on_epoch_end(model, epoch, logs)``; an
``on_epoch_end`` that returns True stops training. ``logs`` holds the epoch's "loss", "accuracy" and, with
validation data, "val_loss" and "val_accuracy". The two learning-rate callbacks add "learning_rate" (the rate
that epoch trained with), as Keras's do, so it lands in ``history.history["learning_rate"]``.
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
