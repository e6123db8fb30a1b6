"""Saved model files: where they go (minicnn.paths), their permissions, and the training record they keep."""
import os
import stat
import sys

import pytest

import minicnn
from minicnn import paths
from minicnn.serialization import save_model


def test_models_folder_is_minicnn_models_then_xdg_data_home_then_local_share(tmp_path, monkeypatch):
    monkeypatch.setenv("MINICNN_MODELS", str(tmp_path / "mine"))
    assert paths.models_dir() == tmp_path / "mine"
    monkeypatch.delenv("MINICNN_MODELS")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert paths.models_dir() == tmp_path / "xdg" / "minicnn" / "models"
    monkeypatch.delenv("XDG_DATA_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert paths.models_dir() == tmp_path / "home" / ".local" / "share" / "minicnn" / "models"
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MINICNN_MODELS", "relative/models")
    assert paths.models_dir() == tmp_path / "relative" / "models" and paths.models_dir().is_absolute()


def test_model_names_mark_a_sample_trained_model_and_tools_prefer_the_full_one(tmp_path, monkeypatch):
    monkeypatch.setenv("MINICNN_MODELS", str(tmp_path))
    assert paths.model_path("mnist", "seed") == tmp_path / "mnist-seed.npz"
    assert paths.model_path("mnist", "default", sample=True) == tmp_path / "mnist-default-sample.npz"
    assert paths.find_model() == tmp_path / "mnist-default.npz"  # nothing there: the path to train
    (tmp_path / "mnist-default-sample.npz").write_bytes(b"")
    assert paths.find_model() == tmp_path / "mnist-default-sample.npz"
    (tmp_path / "mnist-default.npz").write_bytes(b"")
    assert paths.find_model() == tmp_path / "mnist-default.npz"


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX permissions")
@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o027, 0o640), (0o002, 0o664)])
def test_saved_files_respect_the_umask(tmp_path, umask, mode):
    previous = os.umask(umask)
    try:
        path = minicnn.mlp().save(tmp_path / "model.npz")
    finally:
        os.umask(previous)
    assert stat.S_IMODE(path.stat().st_mode) == mode
    assert os.listdir(tmp_path) == ["model.npz"]


def test_the_training_record_comes_back_as_model_metadata(tmp_path):
    record = {"trained_at": "2026-11-21T11:10:00+00:00", "data": "full MNIST from /data (cache)", "sample": False}
    path = save_model(minicnn.mlp(), tmp_path / "model.npz", metadata=record)
    assert minicnn.load_model(path).metadata == record
    assert minicnn.load_model(minicnn.mlp().save(tmp_path / "plain.npz")).metadata is None
