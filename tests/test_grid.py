"""minicnn grid: grid files, the same results on every scheduler, resuming a killed grid, failures recorded.

Each run is tiny (an MLP, a few hundred MNIST images, one epoch), so the Dask tests stay within seconds."""
import csv
import os
import signal
import subprocess
import sys
import time

import pytest
from conftest import REPO, real_data_dir

from minicnn.commands.grid import train_one
from minicnn.grid import GridError, expand, load_grid, parse_grid, read_results, run_grid, value_range

TINY = """
[base]
model = "mlp"
epochs = 1
limit = {limit}
data-dir = "{data}"
[axes]
lr = {{ start = 1e-3, stop = 1e-2, num = 2, scale = "log" }}
batch-size = [32, 64]
"""


@pytest.fixture
def tiny_grid(tmp_path):
    """A 4-run grid file (2 learning rates x 2 batch sizes) on 400 MNIST images."""
    path = tmp_path / "tiny.toml"
    path.write_text(TINY.format(limit=400, data=real_data_dir("mnist")))
    return path


def accuracies(summary):
    return {tuple(sorted(item["labels"].items())): item["accuracies"] for item in summary["configurations"]}


def csv_rows(folder):
    with open(folder / "results.csv", newline="") as file:
        return list(csv.DictReader(file))


def test_a_range_gives_its_values_rounded_and_both_ends():
    assert value_range("lr", {"start": 1e-4, "stop": 1e-2, "num": 3, "scale": "log"}) == [1e-4, 1e-3, 1e-2]
    assert value_range("batch", {"start": 16, "stop": 64, "num": 4}) == [16, 32, 48, 64]
    with pytest.raises(GridError, match="log range needs positive"):
        value_range("lr", {"start": 0, "stop": 1, "num": 3, "scale": "log"})


def test_runs_take_base_then_case_then_axes_then_the_command_line_and_drop_empty_options():
    grid = parse_grid({"base": {"model": "seed", "batch-size": 32, "epochs": 8},
                       "axes": {"model": ["seed", "report004"], "augment": ["", "rotation=10"]},
                       "cases": [{"name": "short", "epochs": 2}], "grid": {"repeats": 2}})
    runs = expand(grid, overrides={"epochs": 1})
    assert len(runs) == 8 and len({run.key for run in runs}) == 8
    assert {run.seed for run in runs} == {0, 1}
    assert all(run.options["epochs"] == 1 and run.options["batch_size"] == 32 for run in runs)
    assert sum("augment" not in run.options for run in runs) == 4  # "" means: leave the option out
    assert runs[0].labels == {"case": "short", "model": "seed", "augment": ""}


@pytest.mark.parametrize("document, message", [
    ({"base": {}, "axis": {}}, "unknown table"),
    ({"axes": {"lr": []}}, "non-empty list"),
    ({"axes": {"lr": {"start": 1, "stop": 2}}}, "a range is written"),
    ({"base": {"seed": 3}}, r"seeds = \[0, 1, 2\]"),
    ({"grid": {"seeds": [0], "repeats": 2}}, "not both"),
])
def test_a_wrong_grid_file_is_refused_with_what_to_write(document, message):
    with pytest.raises(GridError, match=message):
        parse_grid(document)


def test_a_file_that_is_not_toml_is_refused(tmp_path):
    (tmp_path / "bad.toml").write_text("[base\nmodel = 1")
    with pytest.raises(GridError, match="not valid TOML"):
        load_grid(tmp_path / "bad.toml")


def test_serial_and_both_dask_schedulers_give_the_same_results(tiny_grid, tmp_path):
    """The same 4 runs (same seeds, one minicnn thread each) in this process, on an in-process Dask client and on a
    2-worker LocalCluster: identical test accuracies, training facts and files."""
    pytest.importorskip("distributed")
    from distributed import Client, LocalCluster

    grid = load_grid(tiny_grid)
    runs = expand(grid)
    serial = run_grid(runs, tmp_path / "serial", train_one, "serial", grid=grid, threads=1, progress=False)
    with Client(processes=False, n_workers=1, threads_per_worker=2, dashboard_address=":0") as client:
        threaded = run_grid(runs, tmp_path / "threads", train_one, client, grid=grid, threads=1, progress=False)
    with LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=":0") as cluster, Client(cluster) as client:
        processes = run_grid(runs, tmp_path / "processes", train_one, client, grid=grid, threads=1, progress=False)
    assert serial["done"] == threaded["done"] == processes["done"] == 4
    assert accuracies(serial) == accuracies(threaded) == accuracies(processes)
    workers = {row["worker"] for row in csv_rows(tmp_path / "processes")}
    assert len(workers) == 2  # both worker processes ran some of it
    for folder in ("serial", "threads", "processes"):
        rows = sorted(csv_rows(tmp_path / folder), key=lambda row: row["key"])
        assert [(row["key"], row["test_accuracy"], row["best_val_accuracy"], row["epochs"]) for row in rows] == \
            [(row["key"], row["test_accuracy"], row["best_val_accuracy"], row["epochs"])
             for row in sorted(csv_rows(tmp_path / "serial"), key=lambda row: row["key"])]
        assert (tmp_path / folder / "accuracy_lr.png").stat().st_size > 1000
        assert "**Best: " in (tmp_path / folder / "results.md").read_text()


def test_a_failing_configuration_is_recorded_and_the_others_run(tiny_grid, tmp_path):
    """An unknown model and a negative learning rate fail with train.py's message; the rest finish; exit status 1."""
    text = tiny_grid.read_text() + '[[cases]]\nname = "fine"\n[[cases]]\nname = "no such model"\nmodel = "resnet"\n'
    tiny_grid.write_text(text.replace("batch-size = [32, 64]", "batch-size = [32]"))
    result = subprocess.run([sys.executable, "-m", "minicnn", "grid", str(tiny_grid), "--out", str(tmp_path / "out")],
                            capture_output=True, text=True, cwd=tmp_path, timeout=300,
                            env={**os.environ, "PYTHONPATH": str(REPO)})
    assert result.returncode == 1, result.stderr
    rows = csv_rows(tmp_path / "out")
    assert sorted(row["status"] for row in rows) == ["error", "error", "ok", "ok"]
    errors = {row["error"] for row in rows if row["status"] == "error"}
    assert errors == {"OptionError: train.py's options: argument --model: invalid choice: 'resnet' (choose from "
                      "'default', 'lenet5', 'mlp', 'report001', 'report003', 'report004', 'seed')"}
    markdown = (tmp_path / "out" / "results.md").read_text()
    assert "## Failed runs" in markdown and "invalid choice: 'resnet'" in markdown
    assert "2 of 4 runs finished" in result.stdout and "2 failed" in result.stdout


def test_an_option_train_py_does_not_know_fails_only_its_runs(tiny_grid, tmp_path):
    """(As the augment option of experiments/report004.toml does with a minicnn that has no --augment.)"""
    grid = parse_grid({"base": load_grid(tiny_grid).base | {"batch_size": 64, "lr": 0.01},
                       "axes": {"no_such_option": ["", "yes"]}})
    summary = run_grid(expand(grid), tmp_path, train_one, progress=False)
    assert summary["done"] == 1 and len(summary["failed"]) == 1
    assert "unrecognized arguments: --no-such-option yes" in summary["failed"][0]["error"]


def test_a_killed_grid_resumes_where_it_stopped(tiny_grid, tmp_path):
    """SIGKILL the grid once its first run is in results.csv; run it again: the finished runs are skipped, a row
    cut short is dropped, and every run ends up in the file once."""
    tiny_grid.write_text(tiny_grid.read_text().replace("limit = 400", "limit = 3000"))
    command = [sys.executable, "-m", "minicnn", "grid", str(tiny_grid), "--out", str(tmp_path / "out")]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    process = subprocess.Popen(command, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 240
    while len(read_results(tmp_path / "out" / "results.csv")) < 1 and process.poll() is None:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    finished = read_results(tmp_path / "out" / "results.csv")
    assert 1 <= len(finished) < 4
    with open(tmp_path / "out" / "results.csv", "a") as file:  # as if killed while writing a row
        file.write("0123456789ab,ok,0,0.01")
    result = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert f"4 runs ({len(finished)} done already" in result.stderr
    rows = csv_rows(tmp_path / "out")
    assert len(rows) == 4 and len({row["key"] for row in rows}) == 4
    assert all(row["status"] == "ok" for row in rows)
    for key, row in finished.items():  # the runs finished before the kill were not run again
        assert next(r for r in rows if r["key"] == key)["finished_at"] == row["finished_at"]


def test_the_command_line_overrides_the_file_and_help_lists_train_options(tiny_grid, tmp_path):
    from minicnn.cli import main

    assert main([  # --limit and --seed override the file: a different (smaller) grid, one seed
        "grid", str(tiny_grid), "--out", str(tmp_path / "out"), "--limit", "300", "--seed", "5"]) == 0
    rows = csv_rows(tmp_path / "out")
    assert len(rows) == 4 and {row["seed"] for row in rows} == {"5"}
    assert all('"limit": 300' in row["config"] for row in rows)
    help_text = subprocess.run([sys.executable, "-m", "minicnn", "grid", "--help"], capture_output=True, text=True,
                               env={**os.environ, "PYTHONPATH": str(REPO)}).stdout
    for option in ("--scheduler", "--out", "--repeats", "--threads", "--epochs", "--lr", "--model", "dask worker"):
        assert option in help_text


def test_without_dask_serial_runs_and_other_schedulers_say_what_to_install(monkeypatch, tiny_grid, tmp_path):
    monkeypatch.setitem(sys.modules, "distributed", None)  # import distributed now fails, as when not installed
    runs = expand(load_grid(tiny_grid))[:1]
    with pytest.raises(GridError, match=r'pip install "minicnn\[dist\]"'):
        run_grid(runs, tmp_path, train_one, "local:2", progress=False)
    assert run_grid(runs, tmp_path, train_one, "serial", progress=False)["done"] == 1


def test_an_unknown_scheduler_is_refused(tiny_grid, tmp_path):
    pytest.importorskip("distributed")
    with pytest.raises(GridError, match="serial, local:N"):
        run_grid(expand(load_grid(tiny_grid))[:1], tmp_path, train_one, "cluster", progress=False)
