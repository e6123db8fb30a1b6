"""The code's shape, checked by real tools (both in the test extra): ruff (pyflakes, pycodestyle, import sorting)
and import-linter (the import contracts in setup.cfg: minicnn's modules depend one way, from the model down to
the layers, and never back up, imports inside functions included)."""
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def run(tool, *arguments):
    if shutil.which(tool) is None:
        pytest.skip(f"{tool} is not installed: pip install -e '.[test]'")
    return subprocess.run([tool, *arguments], capture_output=True, text=True, cwd=ROOT, timeout=300)


def test_ruff_finds_nothing():
    completed = run("ruff", "check", ".")
    assert completed.returncode == 0, completed.stdout[-4000:] + completed.stderr[-2000:]


def test_imports_keep_the_layered_contracts():
    completed = run("lint-imports", "--no-cache")
    assert completed.returncode == 0, completed.stdout[-4000:] + completed.stderr[-2000:]
    assert "broken" in completed.stdout and "0 broken" in completed.stdout
