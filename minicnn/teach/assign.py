"""``minicnn assign``: check the solution, then write the student copy and the autograder folder.

    DIR/student/      minicnn/ (each chosen region a stub raising NotImplementedError("task ID: hint")),
                      mnist_loader/, train.py, tests/test_public.py, conftest.py, README.md
    DIR/autograder/   solutions/ (the original files of the chosen tasks), hidden_tests.json (every hidden
                      check: inputs, expected values, points), tasks.json, run_autograder and setup.sh
                      (Gradescope's entry points), README.md
"""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from minicnn.teach import checks, grading, markers, public_tests, runner
from minicnn.teach.tasks import END_TO_END


class SolutionFailsError(RuntimeError):
    pass


def public_test_source(tasks):
    return public_tests.HEADER + "".join("\n" + public_tests.TESTS[task.id] for task in tasks if task.id in
                                         public_tests.TESTS)


def check_solution(tasks, time_limit=grading.TIME_LIMIT, jobs=2, out=print):
    """The hidden checks and the public tests must pass on the solution, else nothing is written."""
    result = grading.grade_submission(grading.PACKAGE_ROOT, tasks, time_limit=time_limit, jobs=jobs, name="solution")
    if result.score != result.max_score:
        raise SolutionFailsError("the solution fails hidden checks, nothing written:\n" + result.report())
    with tempfile.TemporaryDirectory(prefix="minicnn-assign-") as folder:
        test_file = Path(folder) / "test_public.py"
        test_file.write_text(public_test_source(tasks))
        completed = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(test_file)],
                                   cwd=grading.PACKAGE_ROOT, capture_output=True, text=True, timeout=300)
    if completed.returncode != 0:
        raise SolutionFailsError("the solution fails the public tests, nothing written:\n" + completed.stdout[-3000:])
    out(f"solution: {result.score:g} of {result.max_score:g} points on the hidden checks; public tests pass")
    return result


def student_readme(tasks):
    rows = "\n".join(f"| {number} | `{task.id}` | {task.title}"
                     + (f" (after `{'`, `'.join(task.needs)}`)" if task.needs else "")
                     + f" | `{task.file}` | {task.difficulty} | {task.points} |" for number, task in enumerate(tasks, 1))
    return f"""# minicnn exercises

You have a working CNN engine with some of its insides cut out. Each cut is marked in the code:

    # BEGIN SOLUTION task=conv2d.backward
    # YOUR CODE HERE (...)
    raise NotImplementedError("task conv2d.backward: <a hint>")
    # END SOLUTION

Replace the `raise` with your code (keep the two marker lines). Work roughly in this order:

| # | task | what | file | difficulty | points |
|---|---|---|---|---|---|
{rows}

plus {checks.points_of(END_TO_END)} points when a tiny CNN trains end to end on the reference engine.

Run the public tests of one task, or all of them (from this folder):

    python -m pytest tests -k conv2d_backward
    python -m pytest tests

train.py and the tests here use the reference engine, which runs your functions one after another (a stub
fails loudly):

    python train.py --model mlp --epochs 1

`minicnn/gradcheck.py` checks gradients numerically (`check_layer(Conv2D(2, 3), (5, 5, 1))`). The autograder
runs hidden checks: more cases, reference values and float64 gradient checks, each task in its own process
with a time limit. Remove debugging prints before you submit (printing more than
{runner.OUTPUT_CAP} characters fails a task). Submit the whole folder (or at least `minicnn/`).

The fast engine (`minicnn/fast/`, `minicnn/kernels/`) computes the same numbers another way: compare with it
once your version works.
"""


AUTOGRADER_SCRIPT = """#!/bin/sh
# Gradescope's entry point: the submission is in /autograder/submission, results go to results.json.
# setup.sh installs what minicnn needs; the solution repository (with minicnn/teach) goes at /autograder/source
# beside this script.
cd /autograder/source && python -m minicnn grade /autograder/submission --tasks {tasks} \\
    --json /autograder/results/results.json
"""


# The student copy runs the reference engine unless told otherwise: it calls the student's own layer functions
# (the fast engine would run its Numba kernels and never reach a stub).
STUDENT_ENGINE = ("import os\n\n"
                  "os.environ.setdefault(\"MINICNN_ENGINE\", \"reference\")  # your layer code runs, not the fast engine\n")


def write_student(tasks, destination):
    destination = Path(destination)
    by_file = {}
    for task in tasks:
        by_file.setdefault(task.file, []).append(task)
    shutil.copytree(grading.PACKAGE_ROOT / "minicnn", destination / "minicnn",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "teach"))
    shutil.copytree(grading.PACKAGE_ROOT / "mnist_loader", destination / "mnist_loader",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    train = (grading.PACKAGE_ROOT / "train.py").read_text()
    future = "from __future__ import annotations\n"
    (destination / "train.py").write_text(train.replace(future, future + STUDENT_ENGINE, 1))
    for file, file_tasks in by_file.items():
        path = destination / file
        path.write_text(markers.cut(path.read_text(), file_tasks, file))
    (destination / "tests").mkdir()
    (destination / "tests" / "test_public.py").write_text(public_test_source(tasks))
    (destination / "conftest.py").write_text(
        '"""Puts this folder first on sys.path, so that the tests import the minicnn here."""\n'
        "import os\nimport sys\nfrom pathlib import Path\n\nsys.path.insert(0, str(Path(__file__).parent))\n"
        "os.environ.setdefault(\"MINICNN_ENGINE\", \"reference\")  # your layer code runs, not the fast engine\n")
    (destination / "README.md").write_text(student_readme(tasks))


def write_autograder(tasks, destination):
    destination = Path(destination)
    for task in tasks:
        target = destination / "solutions" / task.file
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(grading.PACKAGE_ROOT / task.file, target)
    hidden = []
    for task_id in grading.task_ids_with_end_to_end(tasks):
        task_checks = checks.checks_of(task_id)
        for check in task_checks:
            inputs, expected = checks.expected_outputs(check)
            hidden.append({"name": check.name, "task": task_id, "title": check.title, "probe": check.probe,
                           "points": checks.points_of(task_id) / len(task_checks),
                           "expected from": "finite differences" if check.numerical else "the solution",
                           "inputs": runner.encode(inputs), "expected": runner.encode(expected)})
    (destination / "hidden_tests.json").write_text(json.dumps(hidden))
    (destination / "tasks.json").write_text(json.dumps(
        [{"id": task.id, "file": task.file, "title": task.title, "hint": task.hint, "difficulty": task.difficulty,
          "points": task.points, "tests": list(task.tests)} for task in tasks], indent=2))
    script = destination / "run_autograder"
    script.write_text(AUTOGRADER_SCRIPT.format(tasks=" ".join(task.id for task in tasks)))
    script.chmod(0o755)
    setup = destination / "setup.sh"
    setup.write_text("#!/bin/sh\n# Gradescope's setup step: what minicnn needs (grading uses the reference engine).\n"
                     "pip3 install numpy numba matplotlib tqdm threadpoolctl\n")
    setup.chmod(0o755)
    (destination / "README.md").write_text(
        "# minicnn autograder\n\nGrade: `minicnn grade SUBMISSION... --tasks "
        f"{' '.join(task.id for task in tasks)} --json results.json --csv grades.csv` (from the solution "
        "repository).\nsolutions/ holds the original files, hidden_tests.json every hidden check with its inputs "
        "and expected values.\n`minicnn bugs check` shows the checks catch every chaff of the bug pack.\n")


def assign(tasks, out_dir, time_limit=grading.TIME_LIMIT, jobs=2, out=print):
    out_dir = Path(out_dir)
    for part in ("student", "autograder"):
        if (out_dir / part).exists():
            raise FileExistsError(f"{out_dir / part} exists already: remove it or choose another --out")
    check_solution(tasks, time_limit, jobs, out)
    write_student(tasks, out_dir / "student")
    write_autograder(tasks, out_dir / "autograder")
    out(f"wrote {out_dir / 'student'} ({len(tasks)} tasks cut) and {out_dir / 'autograder'}")
