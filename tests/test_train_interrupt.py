"""Ctrl+C in train.py, with real SIGINTs sent to a real train.py process.

The first Ctrl+C stops training after the current step and saves the model at once (as ...-interrupted.npz,
leaving the earlier model alone), before the test-set evaluation; a second one skips that evaluation; nothing
is lost and the exit status is 130. These runs use mnist_loader's bundled sample (offline), so they need no
downloaded data.
"""
import os
import re
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
from conftest import REPO
from test_train_script import offline_env

import minicnn

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="SIGINT to another process is POSIX")


class TrainProcess:
    """train.py running in the background; its stderr collected as it comes (partial lines too)."""

    def __init__(self, tmp_path, *arguments, env=None):
        env = dict(env or offline_env(tmp_path), PYTHONUNBUFFERED="1")
        self.process = subprocess.Popen([sys.executable, str(REPO / "train.py"), *arguments], cwd=tmp_path, env=env,
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.chunks = []
        self.stdout = ""
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        while chunk := os.read(self.process.stderr.fileno(), 65536):
            self.chunks.append(chunk)

    @property
    def stderr(self):
        return b"".join(self.chunks).decode()

    def wait_for(self, text, timeout=300):
        """Block until `text` appears on stderr."""
        deadline = time.monotonic() + timeout
        while text not in self.stderr:
            if not self.reader.is_alive() and text not in self.stderr:
                pytest.fail(f"train.py ended before printing {text!r}:\n{self.stderr}")
            if time.monotonic() > deadline:
                pytest.fail(f"train.py did not print {text!r} within {timeout} s:\n{self.stderr}")
            time.sleep(0.01)

    def ctrl_c(self):
        os.kill(self.process.pid, signal.SIGINT)

    def finish(self, timeout=300):
        self.stdout = self.process.stdout.read().decode()
        code = self.process.wait(timeout=timeout)
        self.reader.join(timeout=10)
        return code


def assert_clean(run):
    stderr = run.stderr
    assert "Traceback" not in stderr and "SystemError" not in stderr, stderr
    assert stderr.rstrip().endswith("stopped by Ctrl+C (exit status 130)"), stderr


def test_one_ctrl_c_saves_at_once_then_evaluates_and_exits_130(tmp_path):
    models = tmp_path / "models"
    models.mkdir()
    earlier = models / "mnist-default-sample.npz"
    earlier.write_bytes(b"an earlier model")
    run = TrainProcess(tmp_path, "--epochs", "4", "--limit", "4000")
    run.wait_for("Epoch 1/4")
    run.ctrl_c()
    assert run.finish() == 130
    assert_clean(run)
    stderr = run.stderr
    assert "Training stopped by Ctrl+C" in stderr and "evaluating it on the test set (Ctrl+C again to skip)" in stderr
    saved = models / "mnist-default-sample-interrupted.npz"
    lines = run.stdout.splitlines()
    saved_line = lines.index(f"saved the model to {saved} (trained on the bundled 10,000-image sample, not full MNIST)")
    accuracy_line = next(index for index, line in enumerate(lines) if line.startswith("test accuracy:"))
    assert saved_line < accuracy_line  # saved before the evaluation
    assert re.search(r"\(\d+ epochs? (and \d+/\d+ steps )?in [\d.]+ s\)$", lines[accuracy_line])
    assert earlier.read_bytes() == b"an earlier model"
    model = minicnn.load_model(saved)
    assert model.metadata["interrupted"] is True and model.metadata["epochs"] >= 1
    assert np.isfinite(model.flat_params).all()


def test_a_second_ctrl_c_skips_the_evaluation_and_loses_nothing(tmp_path):
    # On the NumPy twins the test set takes seconds to evaluate, so the second Ctrl+C surely lands in it.
    run = TrainProcess(tmp_path, "--epochs", "5", "--limit", "1000", "--engine", "twins")
    run.wait_for("Epoch 1/5")
    run.ctrl_c()
    run.wait_for("evaluating it on the test set")
    run.ctrl_c()
    assert run.finish() == 130
    assert_clean(run)
    assert re.search(r"^test accuracy: not measured \(Ctrl\+C\); trained \d+ epochs? ", run.stdout, re.MULTILINE)
    saved = tmp_path / "models" / "mnist-default-sample-interrupted.npz"
    assert f"saved the model to {saved}" in run.stdout
    assert minicnn.load_model(saved).metadata["interrupted"] is True


def test_two_quick_ctrl_c_during_numba_training_stop_cleanly(tmp_path):
    """The second press lands while the Numba kernels run or while the model is being saved: it is counted,
    never raised inside a kernel (that gave `SystemError: CPUDispatcher(...) returned a result with an
    exception set`) or inside the save."""
    run = TrainProcess(tmp_path, "--epochs", "5", "--limit", "4000")
    run.wait_for("Epoch 1/5")
    run.ctrl_c()
    time.sleep(0.02)
    run.ctrl_c()
    assert run.finish() == 130
    assert_clean(run)
    saved = tmp_path / "models" / "mnist-default-sample-interrupted.npz"
    assert f"saved the model to {saved}" in run.stdout
    assert minicnn.load_model(saved).metadata["interrupted"] is True


def test_ctrl_c_before_training_starts_exits_130_without_saving(tmp_path):
    # A new Numba cache: the press lands while the kernels compile, before training.
    run = TrainProcess(tmp_path, "--epochs", "1", "--limit", "1000",
                       env=offline_env(tmp_path, NUMBA_CACHE_DIR=str(tmp_path / "numba cache")))
    run.wait_for("compiling kernels")
    run.ctrl_c()
    assert run.finish() == 130
    stderr = run.stderr
    assert "Traceback" not in stderr, stderr
    assert "stopped by Ctrl+C before training started; nothing was saved (exit status 130)" in stderr
    assert not (tmp_path / "models").exists()
