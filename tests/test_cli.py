"""The ``minicnn`` command line: installed as a console script, also ``python -m minicnn``."""
import shutil
import subprocess
import sys

import pytest

from minicnn.cli import main
from minicnn.commands import COMMANDS


def test_help_lists_every_subcommand(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    output = capsys.readouterr().out
    for name in COMMANDS:
        assert name in output


def test_no_subcommand_prints_help_and_fails(capsys):
    assert main([]) == 2
    assert "SUBCOMMAND" in capsys.readouterr().out


def test_info_names_the_engines_and_the_models_folder(capsys):
    assert main(["info"]) == 0
    output = capsys.readouterr().out
    assert "engines: fast, reference, twins" in output and "models folder:" in output


def test_the_console_script_and_python_dash_m_run():
    command = shutil.which("minicnn")
    if command is None:
        pytest.skip("the console script is not installed: pip install -e .")
    for argv in ([command, "--help"], [sys.executable, "-m", "minicnn", "--help"]):
        completed = subprocess.run(argv, capture_output=True, text=True, timeout=120)
        assert completed.returncode == 0 and "info" in completed.stdout, completed.stderr


def test_predict_prints_the_top_three_per_image_and_explains_bad_ones(digit_models, tmp_path, monkeypatch, capsys):
    import numpy as np
    from PIL import Image

    monkeypatch.setenv("MINICNN_MODELS", str(digit_models))
    one = np.full((120, 90), 255, np.uint8)
    one[15:105, 42:50] = 0
    Image.fromarray(one).save(tmp_path / "one.png")
    (tmp_path / "notes.png").write_text("not an image")
    assert main(["predict", str(tmp_path / "one.png"), str(tmp_path / "notes.png")]) == 1
    captured = capsys.readouterr()
    lines = captured.out.splitlines()
    assert lines[0].startswith(f"model: {digit_models / 'mnist-default.npz'} (saved ")
    assert lines[1].startswith(f"{tmp_path / 'one.png'}: 1  (1: ") and lines[1].count("%") == 3
    assert "notes.png: not a readable image" in captured.err
    assert main(["predict", str(tmp_path / "one.png"), "--model", "seed"]) == 2
    assert "no trained model mnist-seed.npz" in capsys.readouterr().err


def test_minicnn_train_is_train_py(capsys):
    """`minicnn train` and `python train.py` are one program: same options, same checks."""
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "--help"])
    assert exit_info.value.code == 0
    help_text = capsys.readouterr().out
    assert "--engine" in help_text and "where models go" in help_text
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "--epochs", "0"])
    assert exit_info.value.code == 2 and "--epochs must be at least 1" in capsys.readouterr().err
