"""`pip install -e .` from a clone in a folder named minicnn (git's default clone name).

A script in the clone's parent folder has that parent on sys.path, where the clone folder `minicnn/` (no
__init__.py) looks like a namespace package named minicnn. setuptools' default editable install is an import
hook placed AFTER Python's path search, so the folder won: `module 'minicnn' has no attribute 'default_cnn'`.
setup.cfg's `package_dir = =.` makes the editable install a plain .pth entry with the repository root
instead: the path search then finds the real package, and a regular package beats a namespace folder.

Reproduced for real: a copy of the project in <tmp>/parent/minicnn, installed with pip (-e, no build
isolation, no dependencies: those come from this environment) into a new virtual environment.
"""
import importlib.util
import os
import shutil
import site
import subprocess
import sys
import venv

import pytest
from conftest import REPO

pytestmark = pytest.mark.skipif(not (importlib.util.find_spec("pip") and importlib.util.find_spec("setuptools")),
                                reason="needs pip and setuptools in this environment")


def test_a_script_beside_a_clone_folder_named_minicnn_imports_the_package(tmp_path):
    clone = tmp_path / "parent" / "minicnn"
    clone.mkdir(parents=True)
    for name in ("pyproject.toml", "setup.cfg", "README.md"):
        shutil.copy(REPO / name, clone / name)
    for package in ("minicnn", "mnist_loader"):
        shutil.copytree(REPO / package, clone / package, ignore=shutil.ignore_patterns("__pycache__", "*.nb[ic]"))
    environment = tmp_path / "venv"
    venv.EnvBuilder(with_pip=False).create(environment)
    python = environment / ("Scripts/python.exe" if sys.platform == "win32" else "bin/python")
    target_site = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                                 capture_output=True, text=True, check=True).stdout.strip()
    # This environment's packages (pip, setuptools, numpy, numba, ...), as plain path entries: their own .pth
    # files (this environment's editable minicnn among them) are not run.
    this_site = [path for path in site.getsitepackages() + [site.getusersitepackages()] if os.path.isdir(path)]
    with open(os.path.join(target_site, "dependencies.pth"), "w") as file:
        file.write("\n".join(this_site) + "\n")
    env = {key: value for key, value in os.environ.items() if not key.startswith(("PYTHON", "PIP_"))}
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    install = subprocess.run([python, "-m", "pip", "install", "--no-deps", "--no-build-isolation", "--no-index",
                              "-e", str(clone)], capture_output=True, text=True, env=env, timeout=300)
    assert install.returncode == 0, install.stdout + install.stderr

    script = tmp_path / "parent" / "script.py"
    script.write_text("import minicnn, mnist_loader\n"
                      "print(minicnn.__file__)\nprint(mnist_loader.__file__)\nprint(minicnn.default_cnn().name)\n")
    result = subprocess.run([python, str(script)], capture_output=True, text=True, env=env, cwd=script.parent,
                            timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [str(clone / "minicnn" / "__init__.py"),
                                          str(clone / "mnist_loader" / "__init__.py"), "default_cnn"]
