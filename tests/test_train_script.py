"""train.py, the main job: options, output, saved model, and (slow) the full default run's accuracy.

(Ctrl+C, with real signals: tests/test_train_interrupt.py.)"""
import os
import re
import subprocess
import sys

import numpy as np
import pytest
from conftest import REPO, closed_port_url, real_data_dir

import minicnn


def run_train(*arguments, timeout=1800, env=None, cwd=REPO):
    result = subprocess.run([sys.executable, str(REPO / "train.py"), *arguments], capture_output=True, text=True,
                            timeout=timeout, cwd=cwd, env=env)
    return result


def offline_env(tmp_path, **extra):
    """No data anywhere and no download possible (mnist_loader then uses its bundled sample); models go to
    tmp_path/models."""
    env = {key: value for key, value in os.environ.items() if key != "MINICNN_DATA"}
    env.update(MINICNN_CACHE=str(tmp_path / "cache"), MINICNN_MNIST_MIRRORS=closed_port_url(),
               MINICNN_MODELS=str(tmp_path / "models"), **extra)
    return env


def test_help_explains_every_option():
    result = run_train("--help")
    assert result.returncode == 0
    for option in ("--model", "--epochs", "--batch-size", "--lr", "--lr-decay", "--val-split", "--dataset",
                   "--data-dir", "--seed", "--save", "--no-save", "--quiet", "--engine", "--limit", "--report",
                   "--no-report"):
        assert re.search(rf"^  {option}\b.*\n?.*\w", result.stdout, re.MULTILINE), option  # listed, with a text
    for topic in ("where models go:", "~/.local/share/minicnn/models", "-sample.npz", "Ctrl+C:",
                  "-interrupted.npz", "exit status:", "130", "first run:", "stderr", "reports/<run name>/"):
        assert topic in result.stdout


def test_bad_options_are_refused_clearly():
    result = run_train("--epochs", "0")
    assert result.returncode == 2 and "--epochs must be at least 1" in result.stderr
    result = run_train("--data-dir", "/nonexistent/folder", "--no-save", "--quiet")
    assert result.returncode == 2 and "/nonexistent/folder" in result.stderr


def test_a_short_run_prints_the_report_and_saves_a_loadable_model(tmp_path):
    path = tmp_path / "seed.npz"
    result = run_train("--model", "seed", "--epochs", "1", "--limit", "6000", "--data-dir",
                       str(real_data_dir("mnist")), "--save", str(path), "--report", str(tmp_path / "report"))
    assert result.returncode == 0, result.stderr
    assert 'Model: "seed_cnn"' in result.stdout and "Total params: 81,066" in result.stdout
    assert "for 1 epoch, batch 32" in result.stdout
    assert "confusion matrix" in result.stdout and "precision" in result.stdout
    accuracy = float(re.search(r"test accuracy: ([\d.]+)%", result.stdout).group(1))
    assert accuracy > 70  # measured: 85% after one epoch on 5,400 images
    assert result.stdout.rstrip().splitlines()[-1] == f"saved the model to {path}"
    assert f"\nevaluation report: {tmp_path / 'report' / 'report.html'}\ntest accuracy: " in result.stdout
    model = minicnn.load_model(path)
    assert model.predict(np.zeros((1, 28, 28, 1), np.float32)).shape == (1, 10)
    record = model.metadata  # when and on what it was trained, for the demo to say
    assert record["dataset"] == "mnist" and record["model"] == "seed" and record["sample"] is False
    assert record["data"].startswith("full MNIST from") and record["training_images"] == 5400
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00", record["trained_at"])
    assert record["test_accuracy"] == pytest.approx(accuracy / 100, abs=5e-5) and record["epochs"] == 1
    assert set(record["history"]) == {"loss", "accuracy", "val_loss", "val_accuracy", "learning_rate"}
    assert record["history"]["learning_rate"] == [0.001] and len(record["history"]["loss"]) == 1
    assert record["training_seconds"] > 0 and record["images_per_second"] > 0 and record["batch_size"] == 32
    assert (tmp_path / "report" / "report.json").is_file()  # its contents: tests/test_report.py


def test_the_data_source_is_printed_once(tmp_path):
    result = run_train("--epochs", "1", "--limit", "500", "--no-save", "--data-dir", str(real_data_dir("mnist")))
    assert result.returncode == 0, result.stderr
    output = result.stdout + result.stderr
    assert output.count("full MNIST from") == 1 and "data: full MNIST from" in result.stdout


def test_results_go_to_stdout_and_progress_to_stderr_one_line_per_epoch(tmp_path):
    """`python train.py > out.txt`: the file gets the results only; off a terminal, progress is one line per
    epoch on stderr (no bar redrawn with carriage returns)."""
    with open(tmp_path / "out.txt", "w") as out, open(tmp_path / "err.txt", "w") as err:
        code = subprocess.run([sys.executable, str(REPO / "train.py"), "--epochs", "2", "--limit", "1000"],
                              stdout=out, stderr=err, env=offline_env(tmp_path), timeout=600, cwd=tmp_path).returncode
    stdout, stderr = (tmp_path / "out.txt").read_text(), (tmp_path / "err.txt").read_text()
    assert code == 0, stderr
    assert "\r" not in stdout + stderr and "Epoch" not in stdout and "it/s" not in stdout + stderr
    assert "test accuracy:" in stdout and "confusion matrix" in stdout and "saved the model to" in stdout
    epoch_lines = [line for line in stderr.splitlines() if line.startswith("Epoch ")]
    assert [line[:10] for line in epoch_lines] == ["Epoch 1/2 ", "Epoch 2/2 "]
    assert all(" - loss: " in line and " - val_accuracy: " in line for line in epoch_lines)


def test_models_go_to_the_per_user_models_folder_whatever_the_working_folder(tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = offline_env(tmp_path)
    del env["MINICNN_MODELS"]
    env["XDG_DATA_HOME"] = str(tmp_path / "data home")
    result = run_train("--epochs", "1", "--limit", "500", "--quiet", env=env, cwd=elsewhere)
    assert result.returncode == 0, result.stderr
    expected = tmp_path / "data home" / "minicnn" / "models" / "mnist-default-sample.npz"
    assert expected.is_file() and f"saved the model to {expected}" in result.stdout
    assert not (elsewhere / "models").exists()


def test_a_run_on_the_sample_is_named_as_such_and_never_replaces_a_full_data_model(tmp_path):
    env = offline_env(tmp_path)
    full_model = tmp_path / "models" / "mnist-default.npz"
    full_model.parent.mkdir()
    full_model.write_bytes(b"a model trained on full MNIST")
    result = run_train("--epochs", "1", "--limit", "500", env=env)
    assert result.returncode == 0, result.stderr
    assert full_model.read_bytes() == b"a model trained on full MNIST"
    sample_model = tmp_path / "models" / "mnist-default-sample.npz"
    last_line = result.stdout.rstrip().splitlines()[-1]
    assert last_line.startswith(f"saved the model to {sample_model}") and "10,000-image sample" in last_line
    assert "data: bundled MNIST sample" in result.stdout and "of the sample" in result.stdout
    assert "warning: full MNIST not found" in result.stderr  # with how to get it
    record = minicnn.load_model(sample_model).metadata
    assert record["sample"] is True and record["data_source"] == "sample"
    # --no-save: the last line (the accuracy) still says which data
    result = run_train("--epochs", "1", "--limit", "500", "--no-save", "--quiet", env=env)
    assert result.returncode == 0 and result.stdout.rstrip().splitlines()[-1].startswith("test accuracy:")
    assert "of the sample" in result.stdout


def test_the_first_run_says_it_compiles_the_kernels(tmp_path):
    """An empty Numba cache (NUMBA_CACHE_DIR a new folder) is announced with an estimate and the time taken; the
    next run, with the kernels cached, says nothing about compiling."""
    env = offline_env(tmp_path, NUMBA_CACHE_DIR=str(tmp_path / "numba cache"))
    first = run_train("--model", "mlp", "--epochs", "1", "--limit", "500", "--no-save", env=env)
    assert first.returncode == 0, first.stderr
    assert re.search(r"^compiling kernels, first run only \(about [\d.]+ s\)\.\.\. done in [\d.]+ s",
                     first.stderr, re.MULTILINE), first.stderr
    second = run_train("--model", "mlp", "--epochs", "1", "--limit", "500", "--no-save", env=env)
    assert second.returncode == 0 and "compiling" not in second.stderr
    numpy_twins = run_train("--model", "mlp", "--epochs", "1", "--limit", "500", "--no-save", "--engine", "reference",
                            env=dict(env, NUMBA_CACHE_DIR=str(tmp_path / "another")))
    assert numpy_twins.returncode == 0 and "compiling" not in numpy_twins.stderr


def test_the_default_model_trains_with_its_augmentation_and_resumes(tmp_path):
    """The default run trains on rotated, shifted and zoomed digits (for the digit pad's drawings): the model file
    starts with the three augmentation layers, the checkpoint records the augmentation, --resume rebuilds the same
    model, and --augment none or another --model goes without."""
    data = ["--data-dir", str(real_data_dir("mnist")), "--no-report"]
    path = tmp_path / "default.npz"
    result = run_train("--epochs", "1", "--limit", "1000", "--save", str(path), *data)
    assert result.returncode == 0, result.stderr
    assert "augmentation: rotation ±15°, shift ±0.05, zoom ±0.1," in result.stdout
    model = minicnn.load_model(path)
    assert [type(layer).__name__ for layer in model.layers[:4]] == ["RandomRotation", "RandomTranslation",
                                                                    "RandomZoom", "Conv2D"]
    assert model.metadata["augmentation"] == "rotation ±15°, shift ±0.05, zoom ±0.1"
    checkpoint = minicnn.load_model(tmp_path / "default-checkpoint.npz")
    assert checkpoint.metadata["run"]["augment"] == "rotation=15,shift=0.05,zoom=0.1"
    resumed = run_train("--resume", "--epochs", "2", "--save", str(path), *data, "--quiet")
    assert resumed.returncode == 0, resumed.stderr
    assert minicnn.load_model(path).metadata["epochs"] == 2
    for options in (["--augment", "none"], ["--model", "lenet5"]):
        other = tmp_path / "other.npz"
        result = run_train(*options, "--epochs", "1", "--limit", "500", "--save", str(other), *data)
        assert result.returncode == 0, result.stderr
        assert "augmentation: none," in result.stdout
        assert minicnn.load_model(other).metadata["augmentation"] == "none"


@pytest.mark.slow
def test_the_default_run_reaches_99_percent_and_reads_drawn_digits(tmp_path):
    """`python train.py` exactly as the README shows it (saving into a temporary folder), on full MNIST; then the
    digit pad's promise: the model holds up on drawn digits (demo/drawn_digits.py's generated drawings and photos,
    read by read_digit)."""
    env = dict(os.environ, MINICNN_DATA=str(real_data_dir("mnist").parent))
    result = run_train("--quiet", "--save", str(tmp_path / "default.npz"), env=env)
    assert result.returncode == 0, result.stderr
    assert "sample" not in result.stdout
    accuracy = float(re.search(r"test accuracy: ([\d.]+)%", result.stdout).group(1))
    print(result.stdout)
    assert accuracy >= 99.0  # measured: 99.22% (seed 0)
    assert minicnn.load_model(tmp_path / "default.npz").metadata["augmentation"] == \
        "rotation ±15°, shift ±0.05, zoom ±0.1"
    drawn = subprocess.run([sys.executable, str(REPO / "demo" / "drawn_digits.py"), "--count", "500", "--model",
                            str(tmp_path / "default.npz")], capture_output=True, text=True, timeout=900, cwd=REPO,
                           env=env)
    assert drawn.returncode == 0, drawn.stderr
    print(drawn.stdout)
    read = float(re.search(r"^all +\d+ +([\d.]+)%", drawn.stdout, re.MULTILINE).group(1))
    assert read >= 98.0  # measured: 99.20% on these 500 (the default CNN without augmentation: 96.80%)


@pytest.mark.parametrize("model, limit", [("report003", 3000), ("report004", 3000),
                                          pytest.param("report001", 1000, marks=pytest.mark.slow)])
def test_train_runs_the_reports_models(tmp_path, model, limit):
    """train.py --model report001/report003/report004: a short run prints the summary (with the non-trainable
    moving statistics of report001) and saves a model that loads."""
    path = tmp_path / f"{model}.npz"
    result = run_train("--model", model, "--epochs", "1", "--limit", str(limit), "--data-dir",
                       str(real_data_dir("mnist")), "--save", str(path))
    assert result.returncode == 0, result.stderr
    assert f'Model: "{model}"' in result.stdout
    if model == "report001":
        assert "Non-trainable params: 1,280" in result.stdout and "batch 128" in result.stdout
    batch = {"report001": 128, "report003": 64, "report004": 32}[model]  # (the plan is for the run's own batches)
    assert f"fast engine, Numba kernels, batch {batch} over" in result.stdout
    accuracy = float(re.search(r"test accuracy: ([\d.]+)%", result.stdout).group(1))
    # (report001 after 7 steps: the moving statistics (momentum 0.99) hold only 7% of the batch statistics yet, so
    # inference is still poor, as in Keras: measured 11.6%. The others learn something in one short epoch.)
    assert accuracy > (5 if model == "report001" else 50)
    loaded = minicnn.load_model(path)
    assert len(loaded.get_weights()) == len(minicnn.ARCHITECTURES[model]().get_weights())
