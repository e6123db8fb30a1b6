"""The instructor kit (minicnn/teach): markers, assign -> grade round trip, the bug pack, hostile submissions.

The round trip: `assign` writes a student copy that scores 0 with each task's own NotImplementedError (not an
import error); the solutions copied in score full marks; three chaffs score less, each with its message.
Hostile submissions (an infinite loop, an exception on import, a million printed lines) cost the affected
tasks their points and nothing else; a snooping one (walking the filesystem, /proc/<grader>, the grader's files)
finds nothing in the Landlock sandbox. Time limits are short here; the full `bugs check` is marked slow (its
in-process twin, test_the_bug_pack_applies_and_every_chaff_changes_an_output, is not).
"""
import os
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

from minicnn.cli import main
from minicnn.teach import bugpack, checks, grading, markers, runner
from minicnn.teach.chaffs import CHAFFS, CHAFFS_BY_ID, chaffs_of
from minicnn.teach.tasks import END_TO_END, TASKS, TASKS_BY_ID, select

REPO = Path(__file__).resolve().parents[1]


def test_every_task_has_one_region_and_its_checks():
    regions = {}
    for path in {task.file for task in TASKS}:
        for region in markers.find_regions((REPO / path).read_text(), path):
            regions.setdefault(region.task, set()).add(path)  # a task may have several regions in its file
    assert {task.id: {task.file} for task in TASKS} == regions
    for task in TASKS:
        assert tuple(check.name for check in checks.checks_of(task.id)) == task.tests, task.id
    assert len(TASKS) >= 12 and {task.difficulty for task in TASKS} == {"easy", "medium", "hard"}
    assert checks.checks_of(END_TO_END)


def test_cut_keeps_the_markers_and_raises_the_task_message():
    task = TASKS_BY_ID["conv2d.backward"]
    source = markers.cut((REPO / task.file).read_text(), [task], task.file)
    compile(source, task.file, "exec")
    assert "# BEGIN SOLUTION task=conv2d.backward" in source and "columns.T @ dy_matrix" not in source
    assert 'NotImplementedError("task conv2d.backward: ' in source.replace("'", '"')
    assert "im2col(" in source  # the other regions of the file are untouched


def test_the_bug_pack_applies_and_every_chaff_changes_an_output():
    """In-process (fast) version of `minicnn bugs check`: each chaff's line is in its region, and at least one
    hidden check of its task sees a difference (or an exception)."""
    assert len(CHAFFS) >= 40 and len(CHAFFS_BY_ID) == len(CHAFFS)
    for chaff in CHAFFS:
        resolve = grading.chaff_resolver(chaff)
        differs = False
        for check in checks.checks_of(chaff.task):
            _, expected = checks.expected_outputs(check)
            try:
                with np.errstate(all="ignore"):
                    outputs = runner.decode(runner.encode(runner.PROBES[check.probe](resolve, check.inputs())))
            except Exception:
                differs = True
                break
            if checks.explain(check, outputs, expected):
                differs = True
                break
        assert differs, f"no hidden check catches chaff {chaff.id}"


@pytest.fixture(scope="module")
def assignment(tmp_path_factory):
    out = tmp_path_factory.mktemp("assignment")
    assert main(["assign", "--out", str(out), "--time-limit", "20"]) == 0
    return out


def test_the_student_copy_scores_zero_with_each_tasks_message(assignment):
    student = assignment / "student"
    assert (student / "tests" / "test_public.py").exists() and (student / "README.md").exists()
    assert not (student / "minicnn" / "teach").exists()  # no hidden checks, no bug pack
    assert 'os.environ.setdefault("MINICNN_ENGINE", "reference")' in (student / "train.py").read_text()
    autograder = assignment / "autograder"
    import json
    hidden = json.loads((autograder / "hidden_tests.json").read_text())
    assert {check["name"] for check in hidden} == {check.name for check in checks.CHECKS}
    assert (autograder / "run_autograder").stat().st_mode & 0o100 and (autograder / "solutions" / "minicnn").is_dir()
    result = grading.grade_submission(student, TASKS, time_limit=20)
    assert result.score == 0 and result.max_score > 0
    for check in result.checks:
        text = " ".join(check.messages)
        assert "NotImplementedError: task " in text, text
        assert "ImportError" not in text and "ModuleNotFoundError" not in text
        if check.task != END_TO_END:
            assert f"task {check.task}:" in text


def solution_copy(assignment, folder):
    """The student copy with the autograder's solution files copied over it."""
    shutil.copytree(assignment / "student", folder)
    shutil.copytree(assignment / "autograder" / "solutions", folder, dirs_exist_ok=True)
    return folder


def test_the_solutions_copied_in_score_full_marks_and_write_gradescope_and_csv(assignment, tmp_path):
    submission = solution_copy(assignment, tmp_path / "alice")
    results_json, grades_csv = tmp_path / "results.json", tmp_path / "grades.csv"
    assert main(["grade", str(submission), "--json", str(results_json), "--csv", str(grades_csv), "--quiet"]) == 0
    import json
    results = json.loads(results_json.read_text())
    total = sum(task.points for task in TASKS) + checks.points_of(END_TO_END)
    assert results["score"] == pytest.approx(sum(test["max_score"] for test in results["tests"])) == total
    assert {"name", "score", "max_score", "output", "visibility"} <= set(results["tests"][0])
    rows = grades_csv.read_text().splitlines()
    assert rows[0].startswith("submission,relu.forward") and rows[1].startswith("alice,")


@pytest.mark.parametrize("chaff_id, expected_message", [
    ("conv-dkernel-batch-sum", "conv2d.backward: dkernel off by a factor of the batch size (3)?"),
    ("pool-grad-everywhere", "known bug gives: max-pool gradient sent to every cell of the window"),
    ("softmax-no-shift", "softmax.forward: y: contains NaN or inf"),
    ("bn-no-mean-term", "known bug gives: BatchNormalization backward without the mean term"),
    ("dropout-no-rescale", "dropout.forward: y off by a constant factor of 0.7"),
])
def test_a_chaff_scores_less_with_its_message(assignment, tmp_path, chaff_id, expected_message):
    chaff = CHAFFS_BY_ID[chaff_id]
    submission = solution_copy(assignment, tmp_path / chaff_id)
    path = submission / chaff.file
    path.write_text(markers.patch_line(path.read_text(), chaff.task, chaff.old, chaff.new))
    task = TASKS_BY_ID[chaff.task]
    result = grading.grade_submission(submission, [task], time_limit=20, end_to_end=False)
    assert result.score < result.max_score
    assert expected_message in result.report(), result.report()


def hostile(assignment, folder, file, old, new):
    submission = solution_copy(assignment, folder)
    path = submission / file
    source = path.read_text()
    assert old in source
    path.write_text(source.replace(old, new, 1))
    return submission


def test_an_infinite_loop_costs_its_task_only(assignment, tmp_path):
    submission = hostile(assignment, tmp_path / "loop", "minicnn/layers/conv2d.py",
                         "    batch, _, _, channels = x.shape\n", "    while True:\n        pass\n")
    result = grading.grade_submission(submission, select(["relu.forward", "conv2d.im2col"]), time_limit=3,
                                      end_to_end=False)
    scores = result.task_scores()
    assert scores["conv2d.im2col"][0] == 0 and scores["relu.forward"][0] == scores["relu.forward"][1]
    assert "time limit" in result.report()


def test_an_exception_on_import_scores_zero_without_crashing_the_grader(assignment, tmp_path):
    submission = hostile(assignment, tmp_path / "boom", "minicnn/layers/relu.py", "import numpy as np\n",
                         "import numpy as np\nraise RuntimeError('boom at import')\n")
    result = grading.grade_submission(submission, select(["relu.forward", "dense.forward"]), time_limit=10,
                                      end_to_end=False)
    assert result.score == 0 and "RuntimeError: boom at import" in result.report()


def test_a_million_printed_lines_fail_the_task_quickly(assignment, tmp_path):
    submission = hostile(assignment, tmp_path / "chatty", "minicnn/layers/dense.py", "    y = x @ kernel\n",
                         "    for line in range(1_000_000):\n        print('debug', line)\n    y = x @ kernel\n")
    result = grading.grade_submission(submission, select(["dense.forward", "relu.forward"]), time_limit=10,
                                      end_to_end=False)
    scores = result.task_scores()
    assert scores["dense.forward"][0] == 0 and scores["relu.forward"][0] == scores["relu.forward"][1]
    assert "output limit" in result.report()


def test_a_hard_crash_costs_its_task_only(assignment, tmp_path):
    """A segmentation fault (no Python exception, no results file) fails that task with the exit status."""
    submission = hostile(assignment, tmp_path / "crash", "minicnn/layers/dense.py", "    y = x @ kernel\n",
                         "    import ctypes\n    ctypes.string_at(0)\n    y = x @ kernel\n")
    result = grading.grade_submission(submission, select(["dense.forward", "relu.forward"]), time_limit=10,
                                      end_to_end=False)
    scores = result.task_scores()
    assert scores["dense.forward"][0] == 0 and scores["relu.forward"][0] == scores["relu.forward"][1]
    assert "the runner stopped" in result.report() and "exit status -11" in result.report(), result.report()


def test_the_submission_sees_neither_the_grader_nor_the_requests(assignment, tmp_path):
    """Inside the subprocess, no minicnn with the hidden checks is importable and the request file is gone."""
    probe = ("    import os, sys\n"
             "    leaked = [p for p in sys.path if os.path.isdir(os.path.join(p or '.', 'minicnn', 'teach'))]\n"
             "    leaked += [name for name in os.listdir('.') if name.startswith('request')]\n"
             "    if leaked:\n"
             "        raise RuntimeError(f'the grader is visible: {leaked}')\n"
             "    y = np.maximum(x, 0)\n")
    submission = hostile(assignment, tmp_path / "curious", "minicnn/layers/relu.py", "    y = np.maximum(x, 0)\n",
                         probe)
    shutil.copytree(REPO / "minicnn" / "teach", submission / "minicnn" / "teach")  # a submitted copy is ignored
    result = grading.grade_submission(submission, select(["relu.forward"]), time_limit=10, end_to_end=False)
    assert result.score == result.max_score, result.report()


SNOOP = '''"""Everything a curious submission tries, to read the hidden checks or the solutions; what works is a leak."""
import os
import sys


def try_read(path, found):
    try:
        with open(path, "rb") as file:
            data = file.read(1_000_000)
    except OSError:
        return
    found.append(path + (" (hidden checks!)" if b"def expected_outputs" in data or b"CHAFFS = [" in data else ""))


def snoop(repo, check_signal):
    found = []
    here = os.path.dirname(os.path.abspath(__file__))
    tops = [os.path.dirname(here), os.path.dirname(os.path.dirname(here)), "/", "/tmp", "/work", "/root", repo,
            os.path.dirname(repo), f"/proc/{os.getppid()}", "/proc/self/cwd/.."]
    for top in tops:  # walk up from where the submission lies, and the usual places, two levels deep
        for root, folders, files in os.walk(top):
            if root.count(os.sep) - top.count(os.sep) >= 2:
                folders[:] = []
            for name in files:
                if name in ("checks.py", "chaffs.py", "hidden_tests.json", "grading.py") or name.startswith("request"):
                    try_read(os.path.join(root, name), found)
    parent = f"/proc/{os.getppid()}"
    for name in ("cmdline", "environ", "maps", "mem", "cwd/minicnn/teach/checks.py", "root" + repo + "/README.md"):
        try_read(os.path.join(parent, name), found)
    for name in ("minicnn/teach/checks.py", "minicnn/layers/relu.py", "minicnn/teach/chaffs.py"):
        try_read(os.path.join(repo, name), found)
    sys.path.insert(0, repo)
    try:
        import minicnn.teach.checks  # noqa: F401
        found.append("import minicnn.teach.checks")
    except ImportError:
        pass
    finally:
        sys.path.remove(repo)
    for path in (os.path.join(repo, "leak.txt"), "/tmp/minicnn-snoop-leak.txt"):
        try:
            with open(path, "w") as file:
                file.write("x")
            found.append("wrote " + path)
            os.remove(path)
        except OSError:
            pass
    if check_signal:
        try:
            os.kill(os.getppid(), 0)  # signal 0: only asks whether the grader could be signalled (killed)
            found.append("can signal the grader")
        except OSError:
            pass
    found += [f"environment {key}" for key in os.environ if key in ("PYTHONPATH", "VIRTUAL_ENV", "MINICNN_DATA")]
    return found
'''


@pytest.mark.skipif(not runner.landlock_abi(), reason="this kernel has no Landlock: the grader runs unconfined")
def test_a_submission_cannot_read_the_hidden_checks_or_the_solutions(assignment, tmp_path, monkeypatch):
    """A submission that walks the filesystem from its own folder, reads /proc/<grader>/..., opens the grader's
    files by absolute path, imports minicnn.teach, writes outside its folder and signals the grader finds nothing
    in the sandbox and gets full marks; unconfined, the same submission finds the grader (so the test can fail)."""
    monkeypatch.setenv("MINICNN_DATA", "/nowhere")  # the grader's environment must not reach the submission
    snooping = ("    from minicnn._snoop import snoop\n"
                f"    leaks = snoop({str(REPO)!r}, check_signal={runner.landlock_abi() >= 6})\n"
                "    if leaks:\n"
                "        raise RuntimeError(f'leaked: {leaks}')\n"
                "    y = np.maximum(x, 0)\n")
    submission = hostile(assignment, tmp_path / "snoop", "minicnn/layers/relu.py", "    y = np.maximum(x, 0)\n",
                         snooping)
    (submission / "minicnn" / "_snoop.py").write_text(SNOOP)
    tasks = select(["relu.forward", "dense.forward"])
    confined = grading.grade_submission(submission, tasks, time_limit=20, end_to_end=False, sandbox=True)
    assert confined.score == confined.max_score, confined.report()
    unconfined = grading.grade_submission(submission, tasks, time_limit=20, end_to_end=False, sandbox=False)
    assert unconfined.task_scores()["relu.forward"][0] == 0
    assert "leaked" in unconfined.report() and "(hidden checks!)" in unconfined.report(), unconfined.report()


def test_bugs_run_grades_a_test_suite_by_the_chaffs_it_catches(assignment, capsys):
    chaffs = [CHAFFS_BY_ID["dense-dkernel-mean"], CHAFFS_BY_ID["relu-abs"]]
    caught, total, passes = bugpack.run(assignment / "student" / "tests" / "test_public.py", chaffs, time_limit=120)
    assert passes and (caught, total) == (2, 2)
    assert "2 of 2 chaffs caught" in capsys.readouterr().out


def test_assign_lists_the_tasks_without_out(capsys):
    assert main(["assign", "--list"]) == 0
    listed = capsys.readouterr().out
    assert all(task.id in listed for task in TASKS) and "batch_normalization.backward" in listed
    assert main(["assign"]) == 2 and "--out DIR" in capsys.readouterr().out


@pytest.mark.skipif(not runner.landlock_abi(), reason="this kernel has no Landlock: the tests run unconfined")
def test_bugs_run_keeps_the_bug_pack_from_the_tests_it_grades(tmp_path):
    """A test suite that reads the bug pack could tell which chaff is applied: it cannot, in the sandbox."""
    suite = tmp_path / "test_curious.py"
    suite.write_text(
        "import os\n\nimport minicnn\n\n\ndef test_the_bug_pack_is_out_of_reach():\n"
        f"    for path in ({str(REPO / 'minicnn' / 'teach' / 'chaffs.py')!r},\n"
        "                 os.path.join(os.path.dirname(minicnn.__file__), 'teach', 'chaffs.py')):\n"
        "        try:\n            open(path).read()\n        except OSError:\n            continue\n"
        "        raise AssertionError('read ' + path)\n")
    caught, total, passes = bugpack.run(suite, [CHAFFS_BY_ID["relu-abs"]], time_limit=120, out=lambda line: None)
    assert passes and (caught, total) == (0, 1)
    failed, summary = bugpack.run_tests(suite, None, 120, sandbox=False)  # unconfined, it reads the grader's copy
    assert failed, summary


def test_the_sandbox_leaves_out_the_grader_even_beneath_an_allowed_folder(tmp_path):
    for name in ("lib/numpy", "lib/minicnn/teach", "lib/tools/minicnn-repo/minicnn", "other"):
        (tmp_path / name).mkdir(parents=True)
    secret = str(tmp_path / "lib" / "tools" / "minicnn-repo")
    kept = grading._readable_without(str(tmp_path / "lib"), [secret, str(tmp_path / "lib" / "minicnn")])
    assert kept == [str(tmp_path / "lib" / "numpy")]
    assert grading._readable_without(str(tmp_path / "other"), [secret]) == [str(tmp_path / "other")]
    paths = grading.sandbox_paths()
    venv = os.path.realpath(sys.prefix)  # (.ci/run's virtual environment is inside the repository: readable)
    assert not any(grading._is_beneath(str(REPO), path) or grading._is_beneath(path, str(REPO)) for path in paths
                   if not grading._is_beneath(os.path.realpath(path), venv))
    assert not any(grading._is_beneath(path, str(REPO / name)) for path in paths for name in ("minicnn", "tests", "docs"))
    inside = tmp_path / "repo"  # a .venv in a secret folder: its site-packages readable, a minicnn in it not
    (inside / ".venv" / "site-packages" / "minicnn").mkdir(parents=True)
    (inside / ".venv" / "site-packages" / "numpy").mkdir()
    (inside / "minicnn").mkdir()
    kept = grading._readable_without(str(inside / ".venv" / "site-packages"),
                                     [str(inside), str(inside / ".venv" / "site-packages" / "minicnn")],
                                     [str(inside / ".venv")])
    assert kept == [str(inside / ".venv" / "site-packages" / "numpy")]
    assert grading._readable_without(str(inside), [str(inside)], [str(inside / ".venv")]) == []


def test_without_landlock_every_report_warns(assignment, tmp_path, monkeypatch):
    monkeypatch.setitem(grading._LANDLOCK, "answer", (False, "this kernel has no Landlock"))
    submission = solution_copy(assignment, tmp_path / "plain")
    result = grading.grade_submission(submission, select(["relu.forward"]), time_limit=10, end_to_end=False)
    assert result.score == result.max_score
    assert "warning: submissions ran unconfined (no sandbox: this kernel has no Landlock)" in result.report()
    assert "warning: submissions ran unconfined" in result.gradescope()["output"]


def test_bugs_list_names_every_chaff(capsys):
    assert main(["bugs", "list"]) == 0
    assert f"{len(CHAFFS)} chaffs" in capsys.readouterr().out


@pytest.mark.slow
def test_bugs_check_catches_every_chaff(capsys):
    assert main(["bugs", "check"]) == 0
    assert f"{len(CHAFFS)} of {len(CHAFFS)} chaffs caught" in capsys.readouterr().out


def test_chaffs_of_every_task():
    assert all(chaffs_of(task.id) for task in TASKS)
