"""The test suite finds the full MNIST wherever mnist_loader would ($MINICNN_DATA, the per-user cache), says in
pytest's header which data it uses, and a test skipped for lack of data says where it looked and what to do."""
import os
import subprocess
import sys

import pytest
from conftest import REPO, find_real_data, real_data_dir

PLACES = {  # environment variable: (its value, where MNIST then goes), paths relative to tmp_path
    "MINICNN_DATA": ("data", "data/mnist"),
    "MINICNN_CACHE": ("cache", "cache/mnist"),
    "XDG_CACHE_HOME": ("xdg", "xdg/minicnn/mnist"),
    "HOME": ("home", "home/.cache/minicnn/mnist"),
}


def clear_data_environment(monkeypatch, tmp_path):
    """No variable pointing anywhere; HOME an empty folder (so ~/.cache/minicnn is empty too)."""
    for variable in ("MINICNN_DATA", "MINICNN_CACHE", "XDG_CACHE_HOME"):
        monkeypatch.delenv(variable, raising=False)
    (tmp_path / "empty-home").mkdir()
    monkeypatch.setenv("HOME", str(tmp_path / "empty-home"))


@pytest.mark.parametrize("variable", PLACES)
def test_the_suite_finds_mnist_where_the_loader_would(variable, tmp_path, monkeypatch):
    real = real_data_dir("mnist")
    tmp_path = tmp_path.resolve()
    clear_data_environment(monkeypatch, tmp_path)
    value, place = PLACES[variable]
    (tmp_path / place).parent.mkdir(parents=True)
    (tmp_path / place).symlink_to(real, target_is_directory=True)
    monkeypatch.setenv(variable, str(tmp_path / value))

    directory, how = find_real_data("mnist", shared=tmp_path / "no-shared-data")
    assert directory == tmp_path / place
    assert how == ("MINICNN_DATA" if variable == "MINICNN_DATA" else "cache")


def test_without_data_the_skip_reason_says_where_it_looked_and_what_to_do(tmp_path, monkeypatch):
    tmp_path = tmp_path.resolve()
    clear_data_environment(monkeypatch, tmp_path)
    directory, reason = find_real_data("mnist", shared=tmp_path / "shared")
    assert directory is None
    assert reason.startswith("full MNIST not found (looked in $MINICNN_DATA (not set), the cache ")
    assert str(tmp_path / "empty-home" / ".cache" / "minicnn" / "mnist") in reason
    assert str(tmp_path / "shared" / "mnist") in reason
    assert "python -m mnist_loader" in reason and "set MINICNN_DATA" in reason

    monkeypatch.setenv("MINICNN_DATA", str(tmp_path / "typo"))  # the loader refuses a wrong MINICNN_DATA
    directory, reason = find_real_data("mnist", shared=tmp_path / "shared")
    assert directory is None and "MINICNN_DATA=" in reason and "typo: no such directory" in reason


def run_pytest_elsewhere(tmp_path, **environment):
    """pytest on a test that needs MNIST, with this conftest.py, in a folder with no shared/data beside it."""
    tests = tmp_path / "clone" / "tests"
    tests.mkdir(parents=True)
    (tests / "conftest.py").write_text((REPO / "tests" / "conftest.py").read_text())
    (tests / "test_uses_mnist.py").write_text("def test_needs_mnist(mnist):\n    assert len(mnist[1][1]) == 10000\n")
    env = {key: value for key, value in os.environ.items()
           if key not in ("MINICNN_DATA", "MINICNN_CACHE", "XDG_CACHE_HOME", "PYTEST_ADDOPTS")}
    env.update(HOME=str(tmp_path), PYTHONPATH=str(REPO), **environment)
    result = subprocess.run([sys.executable, "-m", "pytest", "-ra", "-p", "no:cacheprovider", str(tests)],
                            cwd=tests.parent, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def test_pytest_says_which_data_it_used(tmp_path):
    real = real_data_dir("mnist")
    cache = tmp_path.resolve() / "cache"
    cache.mkdir()
    (cache / "mnist").symlink_to(real, target_is_directory=True)
    output = run_pytest_elsewhere(tmp_path, MINICNN_CACHE=str(cache))
    assert f"data: mnist from {cache / 'mnist'} (cache)" in output
    assert "1 passed" in output


def test_a_skipped_data_test_says_how_to_enable_it(tmp_path):
    output = run_pytest_elsewhere(tmp_path, MINICNN_CACHE=str(tmp_path / "empty-cache"))
    assert "data: full MNIST not found (looked in $MINICNN_DATA (not set), the cache " in output
    assert "1 skipped" in output
    skip_line = next(line for line in output.splitlines() if line.startswith("SKIPPED"))
    assert "full MNIST not found" in skip_line and "python -m mnist_loader" in skip_line
    assert ("1 test was skipped without the full MNIST: run `python -m mnist_loader` once (downloads it into the "
            "cache) or set MINICNN_DATA to a directory holding mnist/") in output
