"""Resumable training: a checkpoint holds everything fit needs, so a run stopped anywhere (even by SIGKILL) and
resumed ends with exactly the weights of the uninterrupted run; damaged or foreign checkpoints are refused; the
last good checkpoint is never replaced by a bad one."""
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from conftest import REPO
from test_train_script import offline_env, run_train

import minicnn
from minicnn.errors import ModelFileError
from minicnn.layers import BatchNormalization, Conv2D, Dense, Dropout, Flatten, MaxPool2D, RandomRotation, RandomTranslation


def small_model(engine="fast"):
    model = minicnn.Sequential([RandomRotation(0.05), RandomTranslation(0.1, 0.1), Conv2D(4, 3, activation="relu"),
                                BatchNormalization(), MaxPool2D(2), Flatten(), Dropout(0.3),
                                Dense(10, activation="softmax")], input_shape=(12, 12, 1), seed=3, engine=engine)
    model.compile(optimizer=minicnn.optimizers.Adam(1e-2))
    return model


DATA = np.random.default_rng(0).random((200, 12, 12, 1)).astype(np.float32), np.arange(200) % 10
FIT = dict(epochs=3, batch_size=32, verbose=0, validation_split=0.1)


class StopAt:
    """Save a checkpoint after step ``step`` of epoch ``epoch`` (-1: at the epoch's end), then stop as a kill would."""

    def __init__(self, path, epoch, step):
        self.path, self.epoch, self.step = path, epoch, step

    def on_train_batch_end(self, model, batch, logs):
        if model.training_progress["epoch"] == self.epoch and batch == self.step:
            model.save_checkpoint(self.path)
            raise KeyboardInterrupt  # (fit stops at once; the checkpoint is what survives)

    def on_epoch_end(self, model, epoch, logs):
        if epoch == self.epoch and self.step == -1:
            model.save_checkpoint(self.path)
            raise KeyboardInterrupt


@pytest.mark.parametrize("engine", ["fast", "reference"])
@pytest.mark.parametrize("epoch, step", [(0, 2), (1, 4), (1, -1)], ids=["inside epoch 1", "inside epoch 2",
                                                                        "after epoch 2"])
def test_a_run_resumed_from_a_checkpoint_ends_bit_for_bit_as_the_uninterrupted_run(tmp_path, engine, epoch, step):
    """Augmentation, dropout and BatchNormalization (every random draw and every state) on both engines."""
    uninterrupted = small_model(engine)
    history = uninterrupted.fit(*DATA, **FIT)
    small_model(engine).fit(*DATA, **FIT, callbacks=[StopAt(tmp_path / "c.npz", epoch, step)])
    resumed = minicnn.load_model(tmp_path / "c.npz")
    assert resumed.engine == engine and resumed.optimizer.iterations > 0
    start = resumed.resume_point["epoch"]
    assert start == (epoch + 1 if step == -1 else epoch)
    resumed.fit(*DATA, **FIT, initial_epoch=start)  # the same call, with initial_epoch
    for ours, theirs in zip(resumed.get_weights(), uninterrupted.get_weights(), strict=True):
        np.testing.assert_array_equal(ours, theirs)
    assert resumed.full_history() == {key: [float(v) for v in values] for key, values in history.history.items()}


def test_the_checkpoint_holds_the_optimizer_state_learning_rate_position_and_seeds(tmp_path):
    model = small_model()
    model.fit(*DATA, **FIT, callbacks=[StopAt(tmp_path / "c.npz", 1, 2)])
    loaded = minicnn.load_model(tmp_path / "c.npz")
    point = loaded.resume_point
    assert (point["epoch"], point["step"], point["steps_per_epoch"], point["batch_size"]) == (1, 3, 6, 32)
    assert loaded.optimizer.iterations == model.optimizer.iterations == 9
    np.testing.assert_array_equal(loaded.optimizer.m, model.optimizer.m)
    np.testing.assert_array_equal(loaded.optimizer.v, model.optimizer.v)
    assert loaded.optimizer.learning_rate == model.optimizer.learning_rate
    assert point["random_layers"] == {layer.name: layer.seed for layer in model.layers if hasattr(layer, "calls")}
    with pytest.raises(ValueError, match="batch_size 32 in the checkpoint, 16 now"):
        loaded.fit(*DATA, **{**FIT, "batch_size": 16}, initial_epoch=1, initial_step=3)


def test_a_damaged_or_foreign_checkpoint_is_refused_with_the_reason(tmp_path):
    model = small_model()
    model.fit(*DATA, **FIT, callbacks=[StopAt(tmp_path / "c.npz", 0, 2)])
    data = (tmp_path / "c.npz").read_bytes()
    (tmp_path / "truncated.npz").write_bytes(data[:len(data) // 2])
    with pytest.raises(ModelFileError, match="corrupted or truncated"):
        minicnn.load_model(tmp_path / "truncated.npz")
    flipped = bytearray(data)
    middle = len(data) // 3
    flipped[middle:middle + 64] = bytes(64)
    (tmp_path / "flipped.npz").write_bytes(bytes(flipped))
    with pytest.raises(ModelFileError):
        minicnn.load_model(tmp_path / "flipped.npz")
    other = minicnn.Sequential([Flatten(), Dense(10, activation="softmax")], input_shape=(12, 12, 1))
    with pytest.raises(ModelFileError, match="different architecture"):
        other.load_weights(tmp_path / "c.npz")


def test_the_last_good_checkpoint_is_never_replaced_by_a_bad_one(tmp_path, monkeypatch):
    from minicnn import serialization

    model = small_model()
    model.fit(*DATA, **FIT, callbacks=[StopAt(tmp_path / "c.npz", 0, 2)])
    good = (tmp_path / "c.npz").read_bytes()
    model.layers[2].kernel.value[0, 0, 0, 0] = np.nan  # diverged weights
    with pytest.raises(ModelFileError, match="NaN or infinity.*Nothing was written"):
        model.save_checkpoint(tmp_path / "c.npz")
    model.layers[2].kernel.value[0, 0, 0, 0] = 0.5
    real_savez = np.savez
    monkeypatch.setattr(serialization.np, "savez", lambda file, **arrays: real_savez(
        file, **{name: (array if name != "param_000" else array * 0) for name, array in arrays.items()}))
    with pytest.raises(ModelFileError, match="did not read back as written; the previous one is kept"):
        model.save_checkpoint(tmp_path / "c.npz")  # a write that came out wrong (a failing disk, say)
    assert (tmp_path / "c.npz").read_bytes() == good
    assert [p.name for p in tmp_path.iterdir()] == ["c.npz"]  # no temporary file left behind


TRAIN = ["--model", "report004", "--augment", "rotation=10,shift=0.1", "--limit", "2000", "--epochs", "3",
         "--checkpoint-every", "7", "--no-report", "--quiet"]


@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL is POSIX")
def test_train_py_killed_with_sigkill_and_resumed_ends_bit_for_bit_as_the_uninterrupted_run(tmp_path):
    """The real thing: train.py in a subprocess, killed with SIGKILL (no chance to save anything) once a checkpoint
    exists, then `train.py --resume`: the final model equals the uninterrupted run's, every array, every bit."""
    env = offline_env(tmp_path)  # (mnist_loader's bundled sample: no download, the same data everywhere)
    whole = run_train(*TRAIN, "--save", str(tmp_path / "whole.npz"), env=env, cwd=tmp_path)
    assert whole.returncode == 0, whole.stderr
    checkpoint = tmp_path / "killed-sample-checkpoint.npz"
    process = subprocess.Popen([sys.executable, str(REPO / "train.py"), *TRAIN, "--save", str(tmp_path / "killed.npz")],
                               cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while not checkpoint.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.002)
    os.kill(process.pid, signal.SIGKILL)
    assert process.wait() == -signal.SIGKILL, "train.py finished before it could be killed"
    point = minicnn.load_model(checkpoint).resume_point
    assert point["epoch"] * point["steps_per_epoch"] + point["step"] < 3 * point["steps_per_epoch"]
    assert not (tmp_path / "killed-sample.npz").exists()
    resumed = run_train("--resume", str(checkpoint), "--save", str(tmp_path / "killed.npz"), "--no-report", "--quiet",
                        env=env, cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    final, reference = minicnn.load_model(tmp_path / "killed-sample.npz"), minicnn.load_model(tmp_path / "whole-sample.npz")
    for ours, theirs in zip(final.get_weights(), reference.get_weights(), strict=True):
        np.testing.assert_array_equal(ours, theirs)
    np.testing.assert_array_equal(final.optimizer.m, reference.optimizer.m)
    assert final.metadata["history"] == reference.metadata["history"] and final.metadata["epochs"] == 3
    assert final.metadata["test_accuracy"] == reference.metadata["test_accuracy"]

    other = run_train("--resume", str(checkpoint), "--model", "mlp", "--no-save", "--no-report", env=env, cwd=tmp_path)
    assert other.returncode == 2 and "checkpoint of a run with --model report004, not mlp" in other.stderr
    (tmp_path / "broken.npz").write_bytes(checkpoint.read_bytes()[:1000])
    broken = run_train("--resume", str(tmp_path / "broken.npz"), "--no-save", "--no-report", env=env, cwd=tmp_path)
    assert broken.returncode == 2 and "corrupted or truncated" in broken.stderr
