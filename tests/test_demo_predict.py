"""demo/predict_digit.py (a wrapper of `minicnn predict`): your own image -> minicnn.digits.read_digit -> 28x28
-> prediction; odd images give clear errors."""
import os
import subprocess
import sys

import numpy as np
import pytest
from conftest import REPO
from PIL import Image

from minicnn import digits


def paint_like(digit_28x28, size=180):
    """An MNIST digit as someone would draw it in Paint: black ink on white, large, off-centre."""
    ink = Image.fromarray((digit_28x28 * 255).astype(np.uint8)).resize((size, size), Image.BILINEAR)
    canvas = Image.new("L", (size + 90, size + 40), 0)
    canvas.paste(ink, (70, 10))
    return 255 - np.asarray(canvas)


def test_read_digit_makes_mnist_style_images(mnist):
    _, (x_test, _) = mnist
    prepared = digits.read_digit(paint_like(x_test[0, :, :, 0]))
    assert prepared.shape == (28, 28) and prepared.dtype == np.float32
    assert 0 <= prepared.min() and prepared.max() <= 1
    assert prepared[0].sum() == 0 and prepared[:, 0].sum() == 0  # black border, white ink
    ys, xs = np.indices(prepared.shape)
    centre = ((ys * prepared).sum() / prepared.sum(), (xs * prepared).sum() / prepared.sum())
    assert abs(centre[0] - 13.5) <= 1 and abs(centre[1] - 13.5) <= 1


def test_blank_and_unreadable_images_are_refused(tmp_path):
    with pytest.raises(digits.ImageProblem, match="blank"):
        digits.read_digit(np.full((50, 50), 255, np.uint8))
    not_an_image = tmp_path / "digit.png"
    not_an_image.write_text("hello")
    with pytest.raises(digits.ImageProblem, match="not a readable image"):
        digits.read_digit(not_an_image)


def test_predicts_paint_style_digits_from_the_command_line(mnist, tmp_path):
    import minicnn
    (x_train, y_train), (x_test, y_test) = mnist
    model = minicnn.default_cnn(seed=0)
    model.compile("adam")
    model.fit(x_train[:6000], y_train[:6000], epochs=1, batch_size=32, verbose=0)
    model_path = model.save(tmp_path / "model.npz")
    paths = []
    for index in range(20):
        path = tmp_path / f"digit{index}.png"
        Image.fromarray(paint_like(x_test[index, :, :, 0])).save(path)
        paths.append(str(path))
    result = subprocess.run([sys.executable, str(REPO / "demo" / "predict_digit.py"), *paths, "--model",
                             str(model_path), "--show", str(tmp_path / "seen.png")],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"model: {model_path} (saved ")  # model.save keeps no training record
    predicted = [int(line.split(": ")[1].split()[0]) for line in result.stdout.splitlines() if ".png:" in line]
    assert len(predicted) == 20
    assert np.mean(np.array(predicted) == y_test[:20]) >= 0.8
    assert (tmp_path / "seen.png").stat().st_size > 0


def test_a_missing_model_file_is_explained(tmp_path):
    result = subprocess.run([sys.executable, str(REPO / "demo" / "predict_digit.py"), "x.png", "--model",
                             str(tmp_path / "none.npz")], capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and "no such model file" in result.stderr


def run_demo_elsewhere(tmp_path, *arguments):
    """The demo run from a folder that is not the repository, with the models folder in tmp_path/models."""
    image = tmp_path / "digit.png"
    pixels = np.full((60, 60), 255, np.uint8)
    pixels[10:50, 27:33] = 0  # a "1"
    Image.fromarray(pixels).save(image)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir(exist_ok=True)
    return subprocess.run([sys.executable, str(REPO / "demo" / "predict_digit.py"), str(image), *arguments],
                          capture_output=True, text=True, timeout=120, cwd=elsewhere,
                          env=dict(os.environ, MINICNN_MODELS=str(tmp_path / "models")))


def test_the_demo_loads_from_the_models_folder_and_says_which_model_and_when_trained(tmp_path):
    import minicnn
    from minicnn.serialization import save_model

    record = {"trained_at": "2026-11-21T11:10:00+00:00", "data": "full MNIST from /data/mnist (cache)",
              "training_images": 54000, "training": "6 epochs in 74.1 s, 12.3 s per epoch", "test_accuracy": 0.9914}
    full = save_model(minicnn.default_cnn(seed=0), tmp_path / "models" / "mnist-default.npz", metadata=record)
    sample = save_model(minicnn.default_cnn(seed=1), tmp_path / "models" / "mnist-default-sample.npz",
                        metadata=dict(record, data="bundled MNIST sample (10,000 train / 2,000 test images)"))
    result = run_demo_elsewhere(tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0] == (
        f"model: {full} (trained 2026-11-21 11:10 UTC on 54,000 images of full MNIST from /data/mnist (cache); "
        "6 epochs in 74.1 s, 12.3 s per epoch; test accuracy 99.14%)")
    full.unlink()  # only the sample-trained model left: the demo uses it, and says so
    result = run_demo_elsewhere(tmp_path)
    assert result.returncode == 0 and result.stdout.startswith(f"model: {sample} (trained 2026-11-21 11:10 UTC on "
                                                               "54,000 images of bundled MNIST sample")
    result = run_demo_elsewhere(tmp_path, "--model", "seed")
    assert result.returncode == 2 and "no trained model mnist-seed.npz in" in result.stderr
    assert "`python train.py --model seed`" in result.stderr
