"""Optimizers. Each keeps its own state (moments, velocities) as flat arrays, one entry per model parameter,
and updates the model's flat parameter buffer in one kernel call."""
from minicnn.optimizers.adam import Adam
from minicnn.optimizers.base import Optimizer
from minicnn.optimizers.sgd import SGD

OPTIMIZER_CLASSES = {"Adam": Adam, "SGD": SGD}


def get(optimizer):
    """An Optimizer from an instance or a Keras-style name ("adam", "sgd")."""
    if isinstance(optimizer, Optimizer):
        return optimizer
    names = {"adam": Adam, "sgd": SGD}
    if isinstance(optimizer, str) and optimizer.lower() in names:
        return names[optimizer.lower()]()
    raise ValueError(f"unknown optimizer {optimizer!r}; use 'adam', 'sgd', or an instance of minicnn.optimizers")


__all__ = ["Adam", "SGD", "Optimizer", "OPTIMIZER_CLASSES", "get"]
