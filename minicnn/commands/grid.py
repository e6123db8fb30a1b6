"""``minicnn grid GRID.toml``: train every combination of some train.py options, here or on a Dask cluster.

    minicnn grid experiments/report004.toml                         # one run after another, in this process
    minicnn grid experiments/report004.toml --scheduler local:2     # two worker processes on this machine
    minicnn grid experiments/report000.toml --scheduler tcp://10.0.0.5:8786 --out /shared/grids/report000
    minicnn grid experiments/report004.toml --epochs 1 --limit 3000 # train.py's options override the file's base

The grid file, the results and the schedulers are described in minicnn/grid.py; ``train_one`` below is one run:
train.py's own option parsing and training function (minicnn/commands/train.py), quiet, saving nothing.
"""
from __future__ import annotations

import argparse
import io
import os
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path

HELP = "train every combination of some train.py options (a TOML grid), here or on a Dask cluster"
EPILOG = """\
grid file (TOML):
  [base]   train.py's options shared by every run, as on its command line: model = "seed", epochs = 2,
           batch-size = 64 (a flag: true; --save, --report and --quiet do not apply: runs save nothing).
           An option train.py does not know is passed to it all the same: those runs fail, recorded with
           train.py's message, and the others go on.
  [axes]   the options to vary, each a list (model = ["seed", "report004"]) or a range
           (lr = { start = 1e-4, stop = 1e-2, num = 3, scale = "log" }); every combination is one run.
           An option set to "" is left out (augment = ["", "rotation=10"]: without, then with).
  [[cases]] optional named sets of options (name = "...", then options), each crossed with the axes.
  [grid]   seeds = [0, 1, 2] or repeats = 3: every configuration once per seed (mean and spread).

results (in --out DIR, default grids/<grid file name>/):
  results.csv   one row per run, appended as each finishes: the axis values, seed, test accuracy, best
                validation accuracy, epochs, training seconds, images/s, threads, worker, the full options,
                and for a failed run its error. Running the grid again skips the finished runs (a killed grid
                resumes) and tries the failed ones again.
  results.md    the configurations ranked by mean test accuracy over their seeds, with the spread; the best
                named at the top; the failed runs with their errors.
  accuracy_<axis>.png   test accuracy against each axis.

schedulers:
  serial        one run after another in this process (the default; needs nothing more).
  local:N       a Dask LocalCluster: N worker processes on this machine, one thread each (N = the number of
                cores is a good choice).
  Every run uses one minicnn thread and one BLAS thread (--threads to change it), wherever it runs: the
  same grid gives the same numbers on every scheduler.
  tcp://HOST:8786   a running Dask cluster: `dask scheduler` on one machine, `dask worker tcp://HOST:8786
                --nthreads 1` (as many as cores) on each; every worker needs minicnn and the data
                (--data-dir or $MINICNN_DATA). Dask: pip install "minicnn[dist]".

exit status:
  0 every run finished, 1 some runs failed (see results.md), 2 bad grid file or option.
"""
EXIT_FAILED_RUNS = 1
EXIT_ERROR = 2
FORCED = {"quiet": True, "no_save": True, "no_report": True}  # a grid's runs print, save and report nothing
NOT_FOR_GRIDS = {"save", "report", *FORCED}  # train.py's options that a grid's runs do not take


def add_arguments(parser):
    from minicnn.commands import train

    parser.add_argument("grid", metavar="GRID.toml", help="the grid file: base options, axes, seeds (see below)")
    parser.add_argument("--scheduler", default="serial", metavar="WHERE",
                        help="serial (default: in this process), local:N (N Dask worker processes on this machine) "
                             "or a Dask scheduler's address, e.g. tcp://10.0.0.5:8786")
    parser.add_argument("--out", default=None, metavar="DIR",
                        help="folder for results.csv, results.md and the plots (default: grids/<grid file name>/)")
    parser.add_argument("--repeats", type=int, default=None, metavar="N",
                        help="run each configuration with seeds 0..N-1 (default: the file's seeds or repeats, else "
                             "seed 0)")
    parser.add_argument("--threads", type=int, default=1, metavar="N",
                        help="minicnn (and BLAS) threads per run, on every scheduler (default: 1, so that a run "
                             "gives the same numbers wherever it runs; --threads 2 makes one serial run faster on "
                             "2 cores, with results that differ by float rounding)")
    group = parser.add_argument_group("train.py's options", "given here, they override the grid file for every "
                                      "run (e.g. --epochs 1 --limit 3000 for a quick try; --seed N runs seed N only)")
    before = len(parser._actions)
    train.add_arguments(group)
    for action in parser._actions[before:]:
        action.default = argparse.SUPPRESS  # only the options given on the command line override the file
        if action.dest in NOT_FOR_GRIDS:
            action.help = argparse.SUPPRESS


def train_option_names():
    """The Python names of train.py's options (those this minicnn's train.py knows)."""
    from minicnn.commands import train

    parser = argparse.ArgumentParser(add_help=False)
    train.add_arguments(parser)
    return {action.dest for action in parser._actions}


def run(arguments):
    from minicnn.grid import GridError, expand, load_grid, run_grid

    known = train_option_names()
    overrides = {name: getattr(arguments, name) for name in known - NOT_FOR_GRIDS if hasattr(arguments, name)}
    seeds = None
    if "seed" in overrides:
        seeds = [overrides.pop("seed")]
    elif arguments.repeats is not None:
        if arguments.repeats < 1:
            arguments.parser.error(f"--repeats must be at least 1, got {arguments.repeats}")
        seeds = list(range(arguments.repeats))
    try:
        grid = load_grid(arguments.grid)
        runs = expand(grid, overrides, seeds)
        unknown = sorted({name for run_ in runs for name in run_.options} - known)
        if unknown:
            print(f"warning: this minicnn's train.py has no option {', '.join('--' + n.replace('_', '-') for n in unknown)}"
                  f": the runs that set it will fail (recorded in results.csv), the others run", file=sys.stderr)
        out = Path(arguments.out) if arguments.out else Path("grids") / grid.name
        summary = run_grid(runs, out, train_one, scheduler=arguments.scheduler, grid=grid, threads=arguments.threads)
    except GridError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("\nstopped by Ctrl+C; the finished runs are in results.csv, and running the grid again resumes",
              file=sys.stderr)
        return 130
    best = next((item for item in summary["configurations"] if item["mean"] is not None), None)
    print(f"{summary['done']} of {summary['runs']} runs finished ({summary['ran']} now, in "
          f"{summary['wall_seconds']:.1f} s on {summary['scheduler']}), {len(summary['failed'])} failed")
    if best is not None:
        from minicnn.grid import describe_labels

        spread = f" ± {best['sd'] * 100:.2f}" if best["sd"] is not None else ""
        print(f"best: {describe_labels(best['labels'])}: {best['mean'] * 100:.2f}%{spread} "
              f"({best['runs']} seed{'s' if best['runs'] != 1 else ''})")
    print(f"results: {(out / 'results.md').absolute()}")
    return EXIT_FAILED_RUNS if summary["failed"] else 0


# ---------------------------------------------------------------- one run (on any worker)

class OptionError(ValueError):
    """train.py's parser refused a run's options."""


class RaisingParser(argparse.ArgumentParser):
    def error(self, message):
        if message.startswith("unrecognized arguments"):
            message += " (this minicnn's train.py has no such option: is the grid file for a newer minicnn?)"
        raise OptionError(f"train.py's options: {message}")


def to_argv(options):
    """{"batch_size": 64, "no_save": True, "augment": "rotation=10"} -> ["--batch-size", "64", "--no-save",
    "--augment", "rotation=10"] (False and "" leave the option out)."""
    argv = []
    for name, value in options.items():
        flag = "--" + name.replace("_", "-")
        if value is True:
            argv.append(flag)
        elif value is not False and value not in ("", None):
            argv += [flag, ",".join(map(str, value)) if isinstance(value, list) else str(value)]
    return argv


def train_arguments(options, seed):
    """train.py's arguments for a run, parsed and checked by train.py's own parser."""
    from minicnn.commands import train

    parser = RaisingParser(prog="train.py", add_help=False)
    train.add_arguments(parser)
    options = {name: value for name, value in options.items() if name not in NOT_FOR_GRIDS}
    arguments = parser.parse_args(to_argv({**options, **FORCED, "seed": seed}))
    train.check_arguments(parser, arguments)
    return arguments


class ThreadOutput(io.TextIOBase):
    """Stands in for sys.stdout / sys.stderr while runs are going: what a thread running a run writes goes to
    that run's buffer (its error message is recorded), everything else to the real stream."""

    def __init__(self, stream):
        self.stream = stream
        self.buffers = {}

    def write(self, text):
        return self.buffers.get(threading.get_ident(), self.stream).write(text)

    def flush(self):
        self.stream.flush()

    def __getattr__(self, name):
        return getattr(self.stream, name)


_capture_lock = threading.Lock()


@contextmanager
def captured():
    """``with captured() as output:`` what this thread prints (stdout and stderr) goes to ``output``."""
    buffer = io.StringIO()
    with _capture_lock:
        proxies = []
        for name in ("stdout", "stderr"):
            stream = getattr(sys, name)
            if not isinstance(stream, ThreadOutput):
                stream = ThreadOutput(stream)
                setattr(sys, name, stream)
            stream.buffers[threading.get_ident()] = buffer
            proxies.append((name, stream))
    try:
        yield buffer
    finally:
        with _capture_lock:
            for name, proxy in proxies:
                proxy.buffers.pop(threading.get_ident(), None)
                if not proxy.buffers and getattr(sys, name) is proxy:
                    setattr(sys, name, proxy.stream)


@contextmanager
def thread_limits(threads):
    """minicnn threads (MINICNN_THREADS) and BLAS threads set to ``threads`` for one run (None: unchanged)."""
    if threads is None:
        yield
        return
    from threadpoolctl import threadpool_limits

    previous = os.environ.get("MINICNN_THREADS")
    os.environ["MINICNN_THREADS"] = str(threads)
    try:
        with threadpool_limits(limits=threads, user_api="blas"):
            yield
    finally:
        if previous is None:
            os.environ.pop("MINICNN_THREADS", None)
        else:
            os.environ["MINICNN_THREADS"] = previous


def train_one(task):
    """One run of a grid: ``task`` = {"key", "options", "seed", "threads"} -> {"status": "ok", "test_accuracy",
    "best_val_accuracy", "epochs", "seconds", "images_per_second", "worker", ...} or {"status": "error",
    "error": ...}. Never raises: a failure is a result like any other."""
    from minicnn.commands import train
    from minicnn.fast.parallel import resolve_threads
    from minicnn.grid import worker_name

    result = {"worker": worker_name(), "threads": resolve_threads(task.get("threads"))}
    started = time.perf_counter()
    output = None
    try:
        arguments = train_arguments(task["options"], task["seed"])
        with thread_limits(task.get("threads")), captured() as output:
            status = train.train_and_report(arguments)
        outcome = getattr(arguments, "outcome", None)
        if status != 0 or outcome is None or "test_accuracy" not in outcome:
            said = [line for line in output.getvalue().splitlines() if line.strip()]
            raise RuntimeError(f"train.py exited with status {status}" + (f": {said[-1]}" if said else ""))
    except Exception as error:
        return {**result, "status": "error", "error": f"{type(error).__name__}: {error}",
                "run_seconds": round(time.perf_counter() - started, 3)}
    history = outcome.get("history", {})
    validation = history.get("val_accuracy") or []
    return {**result, "status": "ok", "test_accuracy": outcome["test_accuracy"],
            "best_val_accuracy": max(validation) if validation else None, "epochs": outcome["epochs"],
            "seconds": outcome["training_seconds"], "images_per_second": outcome["images_per_second"],
            "run_seconds": round(time.perf_counter() - started, 3)}

