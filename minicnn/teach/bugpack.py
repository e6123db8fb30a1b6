"""Running the bug pack: against the hidden checks (``minicnn bugs check``) or a student's tests (``bugs run``)."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from minicnn.teach import grading, markers, runner
from minicnn.teach.chaffs import CHAFFS
from minicnn.teach.tasks import TASKS_BY_ID


def write_chaffed_package(chaff, destination):
    """A copy of the grader's minicnn (and mnist_loader) under ``destination`` with the chaff's one line changed."""
    destination = Path(destination)
    for package in ("minicnn", "mnist_loader"):
        shutil.copytree(grading.PACKAGE_ROOT / package, destination / package,
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "teach"))  # not the bug pack itself
    if chaff is not None:
        path = destination / chaff.file
        path.write_text(markers.patch_line(path.read_text(), chaff.task, chaff.old, chaff.new, chaff.file))
    return destination


@dataclass
class ChaffOutcome:
    chaff: object
    caught: bool
    detail: str


def check_one(chaff, time_limit):
    with tempfile.TemporaryDirectory(prefix="minicnn-chaff-") as folder:
        write_chaffed_package(chaff, folder)
        result = grading.grade_submission(folder, [TASKS_BY_ID[chaff.task]], time_limit=time_limit, jobs=1,
                                          name=chaff.id, end_to_end=False)
    failed = [check for check in result.checks if not check.passed]
    detail = " | ".join(failed[0].messages) if failed else "every hidden check passed"
    return ChaffOutcome(chaff, bool(failed), detail)


def check(chaffs=CHAFFS, time_limit=grading.TIME_LIMIT, jobs=2, out=print):
    """The solution must pass every hidden check and every chaff must fail one. Returns (caught, total, solution ok)."""
    solution = grading.grade_submission(grading.PACKAGE_ROOT, list(TASKS_BY_ID.values()), time_limit=time_limit,
                                        jobs=jobs, name="solution")
    solution_ok = solution.score == solution.max_score
    out(f"solution: {solution.score:g} of {solution.max_score:g} points" + ("" if solution_ok else " (FAILS)"))
    if not solution_ok:
        out(solution.report())
    with ThreadPoolExecutor(max(1, jobs)) as pool:
        outcomes = list(pool.map(lambda chaff: check_one(chaff, time_limit), chaffs))
    for outcome in outcomes:
        verdict = "caught" if outcome.caught else "MISSED"
        out(f"{verdict:<7} {outcome.chaff.id:<28} {outcome.chaff.description}\n"
            f"        -> {outcome.detail}")
    caught = sum(outcome.caught for outcome in outcomes)
    out(f"{caught} of {len(outcomes)} chaffs caught")
    return caught, len(outcomes), solution_ok


# Runs pytest in the grading folder, sandboxed as the grader's runner is (minicnn/teach/runner.py: Landlock), so that
# a test suite can neither read the bug pack (which chaff is applied) nor the grader's repository.
PYTEST_LAUNCHER = """import json, os, sys
folder = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(folder, ".grader"))
import runner
with open(sys.argv[1]) as file:
    request = json.load(file)
os.remove(sys.argv[1])
if request["sandbox"] is not None:
    runner.landlock(request["sandbox"]["read"], [folder, *request["sandbox"]["write"]])
sys.path.insert(0, folder)
import pytest
sys.exit(pytest.main(request["arguments"]))
"""


def run_tests(tests, chaff, time_limit, sandbox=None):
    """(tests failed?, last line of pytest's output) for the student's tests on the solution (chaff None) or a chaff.
    ``sandbox``: as grading.grade_submission's (None: Landlock when the kernel has it)."""
    with tempfile.TemporaryDirectory(prefix="minicnn-bugs-run-") as folder:
        write_chaffed_package(chaff, folder)
        # The tests run from a copy beside the chaffed package: a conftest.py above them (a student copy's,
        # which puts the student's own minicnn first) must not pick another minicnn.
        tests, copied = Path(tests).resolve(), Path(folder) / "tests_under_check"
        if tests.is_dir():
            shutil.copytree(tests, copied, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            copied.mkdir()
            shutil.copy(tests, copied / tests.name)
        grader = Path(folder) / ".grader"
        grader.mkdir()
        shutil.copy(Path(runner.__file__), grader / "runner.py")
        (grader / "launch.py").write_text(PYTEST_LAUNCHER)
        (Path(folder) / "tmp").mkdir()
        sandbox = grading.landlock_available()[0] if sandbox is None else sandbox
        request = grader / "request.json"
        request.write_text(json.dumps({
            "arguments": ["-x", "-q", "-p", "no:cacheprovider", "--rootdir", folder, str(copied)],
            "sandbox": {"read": grading.sandbox_paths(), "write": list(grading.SYSTEM_WRITE_PATHS)} if sandbox else None}))
        environment = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": folder, "TMPDIR": str(Path(folder) / "tmp"),
                       "MINICNN_ENGINE": "reference", "PYTHONDONTWRITEBYTECODE": "1", "OMP_NUM_THREADS": "1",
                       "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "MPLBACKEND": "Agg",
                       "NUMBA_CACHE_DIR": str(Path(folder) / ".numba")}
        command = [sys.executable, "-I", str(grader / "launch.py"), str(request)]
        try:
            completed = subprocess.run(command, cwd=folder, env=environment, capture_output=True, text=True,
                                       timeout=time_limit)
        except subprocess.TimeoutExpired:
            return True, f"time limit ({time_limit:g} s)"
    lines = (completed.stdout or completed.stderr).strip().splitlines()
    return completed.returncode != 0, lines[-1] if lines else f"exit status {completed.returncode}"


def run(tests, chaffs=CHAFFS, time_limit=120.0, jobs=2, out=print):
    """Grade a test suite by the chaffs it catches (it must pass the solution). Returns (caught, total, passes)."""
    failed, summary = run_tests(tests, None, time_limit)
    out(f"solution: {'your tests FAIL on the correct code: ' if failed else 'your tests pass'} ({summary})")
    with ThreadPoolExecutor(max(1, jobs)) as pool:
        outcomes = list(pool.map(lambda chaff: (chaff, *run_tests(tests, chaff, time_limit)), chaffs))
    for chaff, caught, summary in outcomes:
        out(f"{'caught' if caught else 'missed':<7} {chaff.id:<28} {chaff.description}")
    caught = sum(caught for _, caught, _ in outcomes)
    out(f"{caught} of {len(outcomes)} chaffs caught by {tests}" + (" (but the tests fail on the solution, so none "
                                                                   "counts)" if failed else ""))
    return (0 if failed else caught), len(outcomes), not failed
