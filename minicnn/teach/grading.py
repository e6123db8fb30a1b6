"""Grading submissions: each task in its own subprocess, the expected values kept in the grader's process.

For one submission (a folder holding its ``minicnn`` package) the grader copies the package and its own
runner (minicnn/teach/runner.py, nothing else) into a fresh temporary folder, then per task starts
``python -I runner.py`` there with a time limit: the runner imports the submission's code, calls the task's
functions on the check inputs and writes back the outputs. Comparisons, expected values and solutions stay
here. An infinite loop, a crash, an exception on import or a flood of prints costs that task's points only.

The subprocess is sandboxed with Landlock (see runner.landlock) before it imports the submission: it reads
only Python, the installed packages (any minicnn among them left out) and the system libraries, and writes only
its temporary folder; the grader's repository (solutions, minicnn/teach with the hidden checks), other
submissions, /proc of other processes and the network are out of its reach. Its environment holds nothing of
the grader's (a fixed short list of variables). On a kernel without Landlock the grader says so in every
report and runs unconfined (``sandbox=False`` does that on purpose): then run it in a container, as Gradescope
and otter-grader do.
"""
from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import types
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from minicnn.teach import checks as checks_module
from minicnn.teach import markers, runner
from minicnn.teach.chaffs import chaffs_of
from minicnn.teach.tasks import END_TO_END, TASKS_BY_ID

TIME_LIMIT = 30.0  # seconds per task
STDERR_CAP = 4000  # characters of a crashed runner's stderr kept for the message
FILE_SIZE_LIMIT = 16 * 2**20  # bytes any file the submission writes may reach (RLIMIT_FSIZE)
PACKAGE_ROOT = Path(__file__).resolve().parents[2]  # the grader's own repository (the solution)


@dataclass
class CheckResult:
    name: str
    task: str
    title: str
    score: float
    max_score: float
    messages: list = field(default_factory=list)
    printed: str = ""

    @property
    def passed(self):
        return not self.messages

    def output(self):
        lines = [self.title, "PASS" if self.passed else "FAIL"] + [f"  {line}" for line in self.messages]
        if self.printed:
            lines += ["your code printed (last lines):", self.printed[-1000:]]
        return "\n".join(lines)


@dataclass
class SubmissionResult:
    name: str
    checks: list
    warning: str = ""

    @property
    def score(self):
        return round(sum(check.score for check in self.checks), 4)

    @property
    def max_score(self):
        return round(sum(check.max_score for check in self.checks), 4)

    def task_scores(self):
        scores = {}
        for check in self.checks:
            earned, possible = scores.get(check.task, (0.0, 0.0))
            scores[check.task] = (earned + check.score, possible + check.max_score)
        return scores

    def gradescope(self, visibility="visible"):
        """Gradescope's results.json: top-level score and one entry per check."""
        return {"score": self.score, "output": f"{self.score:g} of {self.max_score:g} points"
                + (f"\n{self.warning}" if self.warning else ""),
                "tests": [{"name": f"{check.task}: {check.title}", "score": check.score,
                           "max_score": check.max_score, "output": check.output(),
                           "visibility": visibility} for check in self.checks]}

    def report(self):
        lines = [f"{self.name}: {self.score:g} of {self.max_score:g} points"] + ([self.warning] if self.warning else [])
        for task, (earned, possible) in self.task_scores().items():
            lines.append(f"  {task:<30} {earned:5.2f} / {possible:g}")
            messages = [message for check in self.checks if check.task == task for message in check.messages]
            lines += [f"      {message}" for message in dict.fromkeys(messages)]  # each once, in order
        return "\n".join(lines)


def task_ids_with_end_to_end(tasks):
    return [task.id for task in tasks] + [END_TO_END]


def copy_submission(source, destination):
    source = Path(source)
    package = source / "minicnn"
    if not package.is_dir():
        raise FileNotFoundError(f"{source} holds no minicnn/ package: pass the folder that contains it (a student "
                                "copy written by `minicnn assign` has it)")
    shutil.copytree(package, Path(destination) / "minicnn",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "teach"))
    shutil.copy(Path(runner.__file__), Path(destination) / "runner.py")


# Read-only paths a submission's process needs besides Python's own sys.path (shared libraries, the CPU count).
SYSTEM_READ_PATHS = ("/lib", "/lib32", "/lib64", "/usr/lib", "/usr/lib32", "/usr/lib64", "/usr/local/lib",
                     "/etc/ld.so.cache", "/etc/ld.so.conf", "/etc/ld.so.conf.d", "/dev/urandom", "/proc/cpuinfo",
                     "/proc/meminfo", "/sys/devices/system/cpu", "/sys/fs/cgroup/cpu.max")
SYSTEM_WRITE_PATHS = ("/dev/null",)
GRADER_PACKAGES = ("minicnn", "mnist_loader")  # an installed copy in a site-packages is left out of the sandbox


def _is_beneath(path, folder):
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


def _readable_without(path, secrets, python_inside=()):
    """[path] when no secret lies beneath it, else its entries (recursively) minus the secrets. ``python_inside``:
    folders of Python's own (a virtual environment made in the repository, as .ci/run makes it) that stay
    readable although a secret holds them; a secret beneath them is still left out."""
    if any(_is_beneath(path, secret) for secret in secrets) and not any(
            _is_beneath(path, folder) for folder in python_inside):
        return []
    if not any(_is_beneath(secret, path) for secret in secrets):
        return [path]
    try:
        entries = sorted(os.listdir(path))
    except OSError:
        return []
    return [kept for entry in entries
            for kept in _readable_without(os.path.join(path, entry), secrets, python_inside)]


def sandbox_paths():
    """What the submission's process may read: Python's sys.path (without the grader's repository, any folder
    holding a minicnn and, in a site-packages, minicnn's own entries) and the system paths above."""
    secrets = {str(PACKAGE_ROOT)}
    read = []
    for entry in sys.path:
        entry = os.path.abspath(entry) if entry else ""
        if not entry or not os.path.exists(entry):
            continue
        if os.path.isdir(os.path.join(entry, "minicnn")) and not entry.endswith(("site-packages", "dist-packages")):
            secrets.add(entry)  # a source tree or another copy of the solution
        elif os.path.isdir(entry):
            secrets.update(os.path.join(entry, name) for name in GRADER_PACKAGES if os.path.exists(os.path.join(entry, name)))
        read.append(entry)
    read += [path for path in SYSTEM_READ_PATHS if os.path.exists(path)]
    secrets = sorted(secrets)
    # A virtual environment inside a secret (the repository's .venv): its Python stays readable, not the rest
    prefixes = {os.path.abspath(prefix) for prefix in (sys.prefix, sys.exec_prefix)}
    python_inside = sorted({folder for prefix in prefixes for folder in (prefix, os.path.realpath(prefix))
                            if any(_is_beneath(folder, secret) and folder != secret for secret in secrets)})
    return sorted({kept for path in read for kept in _readable_without(os.path.realpath(path), secrets, python_inside)}
                  | {kept for path in read for kept in _readable_without(path, secrets, python_inside)})


_LANDLOCK = {}


def landlock_available():
    """(True, '') when this kernel enforces Landlock, else (False, why). Asked once, in a throwaway process."""
    if "answer" not in _LANDLOCK:
        code = ("import sys; sys.path.insert(0, sys.argv[1]); import runner\n"
                "try:\n    runner.landlock([], [])\nexcept OSError as error:\n    print(error)")
        completed = subprocess.run([sys.executable, "-I", "-c", code, str(Path(runner.__file__).parent)],
                                   capture_output=True, text=True, timeout=60, env={"PATH": os.environ.get("PATH", "")})
        why = (completed.stdout + completed.stderr).strip()
        _LANDLOCK["answer"] = (completed.returncode == 0 and not why, why)
    return _LANDLOCK["answer"]


def run_in_subprocess(folder, cases, time_limit, tag, sandbox=True):
    """Run the runner on these cases in ``folder``: ([{check, outputs|error, printed}], None) or (None, why)."""
    folder = Path(folder)
    request, result = folder / f"request-{tag}.json", folder / f"result-{tag}.json"
    request.write_text(json.dumps({"cases": cases, "output_cap": runner.OUTPUT_CAP,
                                   "file_size_limit": FILE_SIZE_LIMIT,
                                   "sandbox": {"read": sandbox_paths(), "write": list(SYSTEM_WRITE_PATHS)}
                                   if sandbox else None}))
    environment = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(folder), "OMP_NUM_THREADS": "1",
                   "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "MINICNN_ENGINE": "reference",
                   "MPLBACKEND": "Agg", "NUMBA_CACHE_DIR": str(folder / ".numba")}
    stderr_path = folder / f"stderr-{tag}.txt"
    started = time.monotonic()
    with open(stderr_path, "wb") as stderr:
        process = subprocess.Popen([sys.executable, "-I", str(folder / "runner.py"), str(request), str(result)],
                                   cwd=folder, env=environment, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                   stderr=stderr, start_new_session=True)
        try:
            process.wait(timeout=time_limit)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
            return None, f"time limit: no answer within {time_limit:g} s (an infinite loop?)"
    if result.exists():
        try:
            return json.loads(result.read_text()), None
        except ValueError:
            pass
    with open(stderr_path, errors="replace") as file:
        tail = file.read(STDERR_CAP).strip().splitlines()[-3:]
    return None, (f"the runner stopped after {time.monotonic() - started:.1f} s with exit status "
                  f"{process.returncode} and no results" + (f": {' | '.join(tail)}" if tail else ""))


# ---------------------------------------------------------------------------------------------- chaffs
_CHAFF_OUTPUTS = {}


def chaff_resolver(chaff):
    """resolve(module, name) that serves the chaffed copy of the chaff's file (executed in a fresh module object,
    never put in sys.modules) and the grader's own modules otherwise."""
    path = PACKAGE_ROOT / chaff.file
    source = markers.patch_line(path.read_text(), chaff.task, chaff.old, chaff.new, chaff.file)
    module_name = TASKS_BY_ID[chaff.task].module
    module = types.ModuleType(module_name)
    module.__file__ = str(path)
    from minicnn.kernels import jit
    registered, made = dict(jit.KERNELS), list(jit._kernels)  # a kernels file registers its kernels: keep ours
    try:
        exec(compile(source, str(path), "exec"), module.__dict__)  # noqa: S102 (our own bug pack)
    finally:
        jit.KERNELS.clear()
        jit.KERNELS.update(registered)
        jit._kernels[:] = made

    def resolve(name, attribute):
        return getattr(module, attribute) if name == module_name else runner.import_resolver(name, attribute)
    return resolve


def known_bug(check, outputs):
    """The description of the chaff whose outputs equal the student's on this check, or None."""
    for chaff in chaffs_of(check.task):
        key = (chaff.id, check.name)
        if key not in _CHAFF_OUTPUTS:
            try:
                with warnings.catch_warnings(), np.errstate(all="ignore"):
                    warnings.simplefilter("ignore")
                    produced = runner.PROBES[check.probe](chaff_resolver(chaff), check.inputs())
                _CHAFF_OUTPUTS[key] = runner.decode(runner.encode(produced))
            except Exception:  # a chaff that raises has no numbers to match
                _CHAFF_OUTPUTS[key] = None
        chaff_outputs = _CHAFF_OUTPUTS[key]
        if chaff_outputs is not None and all(
                key in chaff_outputs and checks_module.compare(outputs.get(key), chaff_outputs[key]) is None
                for key in checks_module.expected_outputs(check)[1]):
            return chaff.description
    return None


# ---------------------------------------------------------------------------------------------- grading
def grade_task(folder, task_id, time_limit, sandbox=True):
    """The CheckResults of one task, run in one subprocess."""
    task_checks = checks_module.checks_of(task_id)
    points = checks_module.points_of(task_id) / len(task_checks)
    cases = [{"check": check.name, "probe": check.probe,
              "inputs": runner.encode(checks_module.expected_outputs(check)[0])} for check in task_checks]
    results, failure = run_in_subprocess(folder, cases, time_limit, task_id, sandbox)
    graded = []
    for index, check in enumerate(task_checks):
        _, expected = checks_module.expected_outputs(check)
        result = CheckResult(check.name, task_id, check.title, 0.0, points)
        if failure:
            result.messages = [f"{task_id}: {failure}"]
        else:
            answer = results[index]
            result.printed = answer.get("printed", "")
            if "error" in answer:
                result.messages = [_error_message(task_id, answer["error"])]
            else:
                outputs = runner.decode(answer["outputs"])
                result.messages = checks_module.explain(check, outputs, expected)
                if result.messages:
                    bug = known_bug(check, outputs)
                    if bug:
                        result.messages.append(f"{task_id}: this is what a known bug gives: {bug}")
        if not result.messages:
            result.score = points
        graded.append(result)
    return graded


def _error_message(task_id, error):
    if "NotImplementedError: task " in error:
        other = error.split("NotImplementedError: task ", 1)[1].split(":", 1)[0]
        if other != task_id:
            return f"{task_id}: needs task {other} first, which is not implemented yet ({error})"
        return f"{task_id}: not implemented yet ({error})"
    return f"{task_id}: {error}"


def grade_submission(path, tasks, time_limit=TIME_LIMIT, jobs=2, name=None, end_to_end=True, sandbox=None):
    """Grade one submission folder on these tasks (Task objects); a SubmissionResult. ``sandbox``: None runs the
    submission in the Landlock sandbox when the kernel has it (else unconfined, with a warning in the report),
    True requires it (a task fails when it cannot be set up), False runs unconfined."""
    warning = ""
    if sandbox is None:
        sandbox, why = landlock_available()
        if not sandbox:
            warning = (f"warning: submissions ran unconfined (no sandbox: {why}); they could read files of this "
                       "machine, the solutions among them: grade in a container")
    task_ids = task_ids_with_end_to_end(tasks) if end_to_end else [task.id for task in tasks]
    for task_id in task_ids:  # expected values first, in this process (not in the worker threads)
        for check in checks_module.checks_of(task_id):
            checks_module.expected_outputs(check)
    with tempfile.TemporaryDirectory(prefix="minicnn-grade-") as folder:
        copy_submission(path, folder)
        with ThreadPoolExecutor(max(1, jobs)) as pool:
            per_task = list(pool.map(lambda task_id: grade_task(folder, task_id, time_limit, sandbox), task_ids))
    return SubmissionResult(name or Path(path).resolve().name, [result for results in per_task for result in results],
                            warning)


def write_json(results, path):
    """Gradescope's results.json for one submission; for several, one file each (PATH with -NAME added)."""
    path = Path(path)
    written = []
    for result in results:
        target = path if len(results) == 1 else path.with_name(f"{path.stem}-{result.name}{path.suffix}")
        target.write_text(json.dumps(result.gradescope(), indent=2))
        written.append(target)
    return written


def write_csv(results, path):
    """The class grade sheet: one row per submission, a column per task, the total."""
    task_ids = list(results[0].task_scores()) if results else []
    with open(path, "w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(["submission", *task_ids, "total", "max_score"])
        for result in results:
            scores = result.task_scores()
            writer.writerow([result.name, *(f"{scores[task_id][0]:g}" for task_id in task_ids),
                             f"{result.score:g}", f"{result.max_score:g}"])
