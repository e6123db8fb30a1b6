"""train.py, the main job: options, output, saved model, and (slow) the full default run's accuracy."""
import re
import subprocess
import sys

import numpy as np
import pytest

import minicnn
from conftest import REPO, real_data_dir


def run_train(*arguments, timeout=1800):
    result = subprocess.run([sys.executable, str(REPO / "train.py"), *arguments], capture_output=True, text=True,
                            timeout=timeout, cwd=REPO)
    return result


def test_help_explains_every_option():
    result = run_train("--help")
    assert result.returncode == 0
    for option in ("--model", "--epochs", "--batch-size", "--lr", "--val-split", "--dataset", "--data-dir",
                   "--seed", "--save", "--quiet"):
        assert option in result.stdout


def test_bad_options_are_refused_clearly():
    result = run_train("--epochs", "0")
    assert result.returncode == 2 and "--epochs must be at least 1" in result.stderr
    result = run_train("--data-dir", "/nonexistent/folder", "--no-save", "--quiet")
    assert result.returncode == 2 and "/nonexistent/folder" in result.stderr


def test_a_short_run_prints_the_report_and_saves_a_loadable_model(tmp_path):
    path = tmp_path / "seed.npz"
    result = run_train("--model", "seed", "--epochs", "1", "--limit", "6000", "--data-dir",
                       str(real_data_dir("mnist")), "--save", str(path))
    assert result.returncode == 0, result.stderr
    assert 'Model: "seed_cnn"' in result.stdout and "Total params: 81,066" in result.stdout
    assert "data: full MNIST" in result.stdout
    assert "confusion matrix" in result.stdout and "precision" in result.stdout
    accuracy = float(re.search(r"test accuracy: ([\d.]+)%", result.stdout).group(1))
    assert accuracy > 70  # measured: 85% after one epoch on 5,400 images
    model = minicnn.load_model(path)
    assert model.predict(np.zeros((1, 28, 28, 1), np.float32)).shape == (1, 10)


@pytest.mark.slow
def test_the_default_run_reaches_99_percent(tmp_path):
    """`python train.py` exactly as the README shows it (saving into a temporary folder)."""
    result = run_train("--quiet", "--save", str(tmp_path / "default.npz"))
    assert result.returncode == 0, result.stderr
    accuracy = float(re.search(r"test accuracy: ([\d.]+)%", result.stdout).group(1))
    print(result.stdout)
    assert accuracy >= 99.0
