"""Where trained models live: one per-user folder that train.py saves to and every tool loads from.

    $MINICNN_MODELS, else $XDG_DATA_HOME/minicnn/models, else ~/.local/share/minicnn/models

so a model trained from any folder is found by ``demo/predict_digit.py`` run from any other. A model file is
named ``<dataset>-<model>.npz`` (e.g. ``mnist-default.npz``); one trained on mnist_loader's bundled sample
(offline, 10,000 images) gets ``-sample`` added, so it never replaces a model trained on the full data set.
"""
from __future__ import annotations

import os
from pathlib import Path

MODELS_ENV = "MINICNN_MODELS"


def models_dir() -> Path:
    """The per-user models folder, as an absolute path (it may not exist yet)."""
    override = os.environ.get(MODELS_ENV)
    if override:
        return Path(override).expanduser().resolve()
    xdg_data = os.environ.get("XDG_DATA_HOME")
    base = Path(xdg_data).expanduser() if xdg_data else Path.home() / ".local" / "share"
    return (base / "minicnn" / "models").resolve()


def model_path(dataset: str = "mnist", model: str = "default", sample: bool = False) -> Path:
    """Where train.py saves a model by default, e.g. ~/.local/share/minicnn/models/mnist-default.npz."""
    return models_dir() / f"{dataset}-{model}{'-sample' if sample else ''}.npz"


def find_model(dataset: str = "mnist", model: str = "default") -> Path:
    """The model a tool loads by default: the full-data one if it exists, else the sample-trained one, else
    the full-data path (loading it then says that there is no such file and how to train one)."""
    full = model_path(dataset, model)
    sample = model_path(dataset, model, sample=True)
    return sample if not full.exists() and sample.exists() else full
