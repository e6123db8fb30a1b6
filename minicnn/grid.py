"""Experiment grids: every combination of some training options, run one by one or on a Dask cluster.

    grid = load_grid("experiments/report004.toml")          # the base options, the axes, the seeds
    runs = expand(grid, overrides={"epochs": 1, "limit": 3000})
    summary = run_grid(runs, "grids/report004", runner, scheduler="local:2", grid=grid)

A grid file (TOML) has up to four tables:

    [base]                     # train.py's options shared by every run, named as on its command line
    model = "seed"             #   ("batch-size" or "batch_size"); true for a flag
    epochs = 2
    [axes]                     # each a list of values, or a range; every combination is one run
    model = ["seed", "report004"]
    lr = { start = 1e-4, stop = 1e-2, num = 3, scale = "log" }   # 1e-4, 1e-3, 1e-2 (scale "linear" too)
    [[cases]]                  # optional: named sets of options, each crossed with the axes
    name = "small batches"
    batch-size = 16
    [grid]
    seeds = [0, 1, 2]          # or repeats = 3 (seeds 0, 1, 2): each configuration once per seed

A run is a pure function of its options and seed (``runner(task) -> dict``, a top-level function of an importable
module, so Dask can send it to another process or machine by name; minicnn/commands/grid.py has train.py's).
An option whose value is "" is left out (``augment = ["", "rotation=10"]``: without, then with).

Results: ``DIR/results.csv`` gets one row per run as it finishes (appended, flushed: a grid that is killed keeps
every finished run, and running it again skips them; failed runs are tried again). ``DIR/results.md`` ranks the
configurations by mean test accuracy over their seeds (with the spread), and ``DIR/accuracy_<axis>.png`` plots
the accuracy against each axis.

Schedulers: "serial" (this process, one run after another), "local:N" (a Dask LocalCluster of N single-threaded
worker processes on this machine), an address such as "tcp://10.0.0.5:8786" (a running Dask scheduler), or a
``distributed.Client`` (tests use ``Client(processes=False)``). Dask is optional: ``pip install "minicnn[dist]"``.
"""
from __future__ import annotations

import csv
import hashlib
import itertools
import json
import math
import os
import socket
import statistics
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from minicnn.errors import MiniCNNError

DASK_MISSING = ('--scheduler {scheduler} needs Dask distributed, which is not installed: pip install "minicnn[dist]" '
                '(or pip install "dask[distributed]"); --scheduler serial runs without it')
METRICS = ["test_accuracy", "best_val_accuracy", "epochs", "seconds", "images_per_second"]
BOOKKEEPING = ["run_seconds", "threads", "worker", "finished_at", "config", "error"]
TABLES = {"base", "axes", "cases", "grid"}


class GridError(MiniCNNError, ValueError):
    """A grid file or a scheduler that cannot be used; the message says why and what to write instead."""


@dataclass
class Grid:
    """What a grid file says: ``base`` options, ``axes`` (name -> list of values), ``cases`` (named option sets,
    each crossed with the axes), ``seeds``."""
    name: str = "grid"
    base: dict = field(default_factory=dict)
    axes: dict = field(default_factory=dict)
    cases: list = field(default_factory=list)
    seeds: list = field(default_factory=lambda: [0])
    source: str | None = None


@dataclass
class Run:
    """One run: its options (train.py's, by their Python names), seed and key (a hash of both)."""
    options: dict
    seed: int
    labels: dict  # the case and axis values that tell this run apart, for the tables and plots

    @property
    def key(self):
        text = json.dumps({"options": self.options, "seed": self.seed}, sort_keys=True)
        return hashlib.sha1(text.encode()).hexdigest()[:12]

    def task(self, threads=None):
        """What the runner gets (plain data: it may travel to another machine)."""
        return {"key": self.key, "options": dict(self.options), "seed": self.seed, "threads": threads}


def option_name(name):
    """train.py's option as a Python name: "batch-size" and "--batch-size" -> "batch_size"."""
    return str(name).strip().lstrip("-").replace("-", "_")


def value_range(name, spec):
    """``{start, stop, num, scale}`` -> a list of ``num`` values from start to stop, both included."""
    unknown = set(spec) - {"start", "stop", "num", "scale"}
    if unknown or not {"start", "stop", "num"} <= set(spec):
        raise GridError(f"axis {name!r}: a range is written {{ start = 1e-4, stop = 1e-2, num = 3, scale = \"log\" }} "
                        f"(scale \"log\" or \"linear\", the default), got {spec}")
    start, stop, count, scale = spec["start"], spec["stop"], spec["num"], spec.get("scale", "linear")
    if not isinstance(count, int) or count < 1:
        raise GridError(f"axis {name!r}: num must be a whole number of at least 1, got {count!r}")
    if scale not in ("log", "linear"):
        raise GridError(f"axis {name!r}: scale must be \"log\" or \"linear\", got {scale!r}")
    if scale == "log" and not (start > 0 and stop > 0):
        raise GridError(f"axis {name!r}: a log range needs positive start and stop, got {start} and {stop}")
    if count == 1:
        return [start]
    values = []
    for index in range(count):
        fraction = index / (count - 1)
        value = (start * (stop / start) ** fraction if scale == "log" else start + (stop - start) * fraction)
        values.append(float(f"{value:.6g}"))  # 0.001, not 0.0009999999999999998
    if all(isinstance(v, int) for v in (start, stop)) and scale == "linear" and all(v == int(v) for v in values):
        values = [int(v) for v in values]
    return values


def parse_grid(document, name="grid", source=None):
    """A Grid from a parsed TOML document (a dict); raises GridError naming what is wrong."""
    unknown = set(document) - TABLES
    if unknown:
        raise GridError(f"{source or name}: unknown table(s) {sorted(unknown)}; a grid file has [base] (train.py's "
                        f"options), [axes] (the values to vary), [[cases]] and [grid] (seeds or repeats)")
    base = {option_name(key): value for key, value in document.get("base", {}).items()}
    axes = {}
    for key, values in document.get("axes", {}).items():
        if isinstance(values, dict):
            values = value_range(key, values)
        if not isinstance(values, list) or not values:
            raise GridError(f"axis {key!r} must be a non-empty list of values or a range "
                            f"{{ start, stop, num, scale }}, got {values!r}")
        axes[option_name(key)] = values
    cases = document.get("cases", [])
    if not isinstance(cases, list) or not all(isinstance(case, dict) for case in cases):
        raise GridError("cases are written as [[cases]] tables, one per case")
    settings = document.get("grid", {})
    unknown = set(settings) - {"seeds", "repeats", "name"}
    if unknown:
        raise GridError(f"[grid] takes seeds, repeats and name, not {sorted(unknown)}")
    if "seeds" in settings and "repeats" in settings:
        raise GridError("[grid]: give seeds = [...] or repeats = N, not both")
    seeds = settings.get("seeds", list(range(settings.get("repeats", 1))))
    if not seeds or not all(isinstance(seed, int) for seed in seeds):
        raise GridError(f"[grid] seeds must be a non-empty list of whole numbers, got {seeds!r}")
    for table in [base, axes, *cases]:
        if "seed" in table:
            raise GridError("the seed is set in [grid] (seeds = [0, 1, 2] or repeats = 3), not as an option")
    return Grid(name=settings.get("name", name), base=base, axes=axes,
                cases=[{option_name(key): value for key, value in case.items()} for case in cases],
                seeds=list(seeds), source=source)


def load_grid(path):
    """A Grid from a TOML file."""
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        try:
            import tomli as tomllib
        except ModuleNotFoundError:
            raise GridError("reading a grid file needs Python 3.11 or later (tomllib), or pip install tomli") from None
    path = Path(path)
    try:
        with open(path, "rb") as file:
            document = tomllib.load(file)
    except FileNotFoundError:
        raise GridError(f"no grid file at {path}") from None
    except tomllib.TOMLDecodeError as error:
        raise GridError(f"{path} is not valid TOML: {error}") from None
    return parse_grid(document, name=path.stem, source=str(path))


def expand(grid, overrides=None, seeds=None):
    """Every run of the grid: base, then case, then axis values, then ``overrides`` (the command line's), once
    per seed. Options set to "" or None are dropped. Runs with the same options and seed are kept once."""
    overrides = {option_name(key): value for key, value in (overrides or {}).items()}
    names = list(grid.axes)
    runs, seen = [], set()
    for case in grid.cases or [{}]:
        for values in itertools.product(*(grid.axes[name] for name in names)):
            options = {**grid.base, **case, **dict(zip(names, values)), **overrides}
            options.pop("name", None)
            options = {key: value for key, value in options.items() if value not in ("", None)}
            labels = ({"case": case["name"]} if "name" in case else {}) | {
                name: overrides.get(name, value) for name, value in zip(names, values)}
            for seed in seeds if seeds is not None else grid.seeds:
                run = Run(options, seed, labels)
                if run.key not in seen:
                    seen.add(run.key)
                    runs.append(run)
    return runs


def label_columns(runs):
    """The columns that tell runs apart in results.csv (the case, then the axes)."""
    columns = []
    for run in runs:
        columns += [name for name in run.labels if name not in columns]
    return columns


# ---------------------------------------------------------------- results.csv

def read_results(path):
    """The rows of a results.csv, the last row of each key winning (a failed run tried again, say). A last line
    cut short by a kill is ignored."""
    path = Path(path)
    if not path.exists():
        return {}
    text = path.read_text()
    if text and not text.endswith("\n"):
        text = text[:text.rfind("\n") + 1]
    rows = {}
    for row in csv.DictReader(text.splitlines()):
        if row.get("key"):
            rows[row["key"]] = row
    return rows


class ResultsFile:
    """results.csv, one row appended (and flushed to disk) per finished run."""

    def __init__(self, path, columns):
        self.path = Path(path)
        self.columns = columns
        if self.path.exists() and self.path.stat().st_size:
            with open(self.path, newline="") as file:
                header = next(csv.reader(file), [])
            if header != columns:
                raise GridError(f"{self.path} holds another grid's results (columns {', '.join(header)}); give "
                                f"another --out folder, or delete the file to start again")
            text = self.path.read_text()
            if not text.endswith("\n"):  # a row cut short by a kill: dropped (that run is run again)
                self.path.write_text(text[:text.rfind("\n") + 1])
        else:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._write([columns])

    def _write(self, rows):
        with open(self.path, "a", newline="") as file:
            csv.writer(file, lineterminator="\n").writerows(rows)
            file.flush()
            os.fsync(file.fileno())

    def append(self, row):
        self._write([[format_cell(row.get(column)) for column in self.columns]])


def format_cell(value):
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, (dict, list)):
        return json.dumps(value, sort_keys=True)
    return str(value)


# ---------------------------------------------------------------- schedulers

def dask_client(scheduler):
    """(client, cluster or None) for "local:N" or an address; GridError if Dask is missing or the text is wrong."""
    try:
        from distributed import Client, LocalCluster
    except ImportError:
        raise GridError(DASK_MISSING.format(scheduler=scheduler)) from None
    if scheduler.startswith("local"):
        count = scheduler.partition(":")[2] or str(os.cpu_count() or 1)
        if not count.isdigit() or int(count) < 1:
            raise GridError(f"--scheduler local:N needs a number of workers N of at least 1, got {scheduler!r}")
        # One thread per worker, and one BLAS/OpenMP thread and one minicnn thread in each (set before the worker
        # process imports NumPy): N workers then use N cores, without oversubscribing them.
        single = {"MINICNN_THREADS": "1", "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1",
                  "MKL_NUM_THREADS": "1", "NUMBA_NUM_THREADS": "1"}
        # Dask sets MALLOC_TRIM_THRESHOLD_=65536 in its workers (to hand memory back to the system), which also
        # turns off glibc's adaptive mmap threshold: every large temporary array is then mapped and unmapped
        # anew. A seed-CNN epoch took about 4x the page faults and 20-35% more CPU time in such a worker than in
        # a plain process; a worker runs one training at a time and reuses what the last one freed.
        import dask

        with dask.config.set({"distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None}):
            cluster = LocalCluster(n_workers=int(count), threads_per_worker=1, processes=True,
                                   dashboard_address=":0", env=single)
        return Client(cluster), cluster
    if "://" not in scheduler and ":" not in scheduler:
        raise GridError(f"unknown scheduler {scheduler!r}: use serial, local:N (N worker processes on this "
                        f"machine) or a Dask scheduler's address such as tcp://10.0.0.5:8786")
    try:
        return Client(scheduler, timeout="15s"), None
    except OSError as error:
        raise GridError(f"could not reach a Dask scheduler at {scheduler} ({error}); start one with `dask "
                        f"scheduler` and workers with `dask worker {scheduler} --nthreads 1`") from None


def completed(runner, tasks, scheduler):
    """Yield ``(task, result)`` as each run finishes. ``result`` is the runner's dict, or for a run whose worker
    died, {"status": "error", "error": ...}."""
    if scheduler in (None, "serial"):
        for task in tasks:
            yield task, runner(task)
        return
    if isinstance(scheduler, str):
        client, cluster = dask_client(scheduler)
    else:
        client, cluster = scheduler, None
    from distributed import as_completed

    try:
        futures = {client.submit(runner, task, key=f"minicnn-run-{task['key']}", pure=False): task
                   for task in tasks}
        for future in as_completed(futures):
            try:
                result = future.result()
            except Exception as error:  # the worker died (KilledWorker), or the task could not reach one
                result = {"status": "error", "error": f"{type(error).__name__}: {error}"}
            yield futures[future], result
    finally:
        if cluster is not None:
            client.close()
            cluster.close()


def describe_scheduler(scheduler):
    if scheduler in (None, "serial"):
        return "serial"
    if isinstance(scheduler, str):
        return scheduler
    return f"Dask client {getattr(scheduler, 'scheduler', None) and scheduler.scheduler.address or scheduler}"


# ---------------------------------------------------------------- running

def run_grid(runs, out, runner, scheduler="serial", grid=None, threads=1, progress=True, stream=None):
    """Run every run not finished in ``out``/results.csv yet, appending a row as each finishes, then write
    results.md and the plots. Returns the summary (see ``summarise``) with "ran", "skipped" and "wall_seconds".
    ``threads``: minicnn threads per run (and BLAS threads), the same on every scheduler so that the results are;
    None leaves minicnn's own default (min(2, cores), or MINICNN_THREADS)."""
    out = Path(out)
    stream = stream or sys.stderr
    labels = label_columns(runs)
    columns = ["key", "status", "seed", *labels, *METRICS, *BOOKKEEPING]
    results = ResultsFile(out / "results.csv", columns)
    finished = {key for key, row in read_results(results.path).items() if row.get("status") == "ok"}
    pending = [run for run in runs if run.key not in finished]
    by_key = {run.key: run for run in runs}
    if progress:
        print(f"{len(runs)} runs ({len(runs) - len(pending)} done already, in {results.path}); running "
              f"{len(pending)} on {describe_scheduler(scheduler)}", file=stream, flush=True)
    bar = None
    if progress and pending:
        from tqdm import tqdm
        bar = tqdm(total=len(pending), unit="run", desc="grid", file=stream, dynamic_ncols=True)
    started = time.perf_counter()
    failures = 0
    try:
        for task, result in completed(runner, [run.task(threads) for run in pending], scheduler):
            run = by_key[task["key"]]
            row = {"key": run.key, "seed": run.seed, **run.labels, "threads": threads, "config": run.options,
                   "status": "ok", **result}
            row.setdefault("finished_at", datetime.now(timezone.utc).isoformat(timespec="seconds"))
            results.append(row)
            failures += row["status"] != "ok"
            if bar is not None:
                accuracy = row.get("test_accuracy")
                last = f"last {accuracy * 100:.2f}%" if accuracy is not None else "last failed"
                bar.set_postfix_str(last + (f", {failures} failed" if failures else ""))
                bar.update(1)
    finally:
        if bar is not None:
            bar.close()
    wall = time.perf_counter() - started
    summary = summarise(runs, read_results(results.path), labels)
    summary.update(ran=len(pending), skipped=len(runs) - len(pending), wall_seconds=wall,
                   scheduler=describe_scheduler(scheduler))
    write_markdown(out / "results.md", summary, grid)
    summary["plots"] = write_plots(out, summary)
    return summary


def number(value):
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def summarise(runs, rows, labels):
    """Per configuration (the runs' options without the seed): the mean and spread of the test accuracy over
    its finished seeds, best first; and the failed runs."""
    groups = {}
    for run in runs:
        config = json.dumps(run.options, sort_keys=True)
        group = groups.setdefault(config, {"labels": run.labels, "options": run.options, "rows": [], "seeds": 0})
        group["seeds"] += 1
        if run.key in rows:
            group["rows"].append(rows[run.key])
    configurations, failed = [], []
    for group in groups.values():
        done = [row for row in group["rows"] if row.get("status") == "ok"]
        failed += [row for row in group["rows"] if row.get("status") != "ok"]
        accuracies = [number(row["test_accuracy"]) for row in done]

        def mean_of(name, done=done):
            values = [number(row.get(name)) for row in done if number(row.get(name)) is not None]
            return statistics.fmean(values) if values else None

        configurations.append({
            "labels": group["labels"], "options": group["options"], "runs": len(done), "seeds": group["seeds"],
            "accuracies": accuracies,
            "mean": statistics.fmean(accuracies) if accuracies else None,
            "sd": statistics.stdev(accuracies) if len(accuracies) > 1 else None,
            "min": min(accuracies) if accuracies else None, "max": max(accuracies) if accuracies else None,
            **{name: mean_of(name) for name in ("best_val_accuracy", "epochs", "seconds", "images_per_second")}})
    configurations.sort(key=lambda item: -math.inf if item["mean"] is None else item["mean"], reverse=True)
    shared = dict(runs[0].options) if runs else {}
    for run in runs[1:]:
        shared = {key: value for key, value in shared.items() if run.options.get(key, None) == value}
    return {"configurations": configurations, "failed": failed, "labels": labels, "runs": len(runs), "shared": shared,
            "done": sum(item["runs"] for item in configurations)}


def plural(count, word):
    return f"{count} {word}" + ("" if count == 1 else "s")


def percent(value, digits=2):
    return "" if value is None else f"{value * 100:.{digits}f}%"


def describe_labels(labels):
    return ", ".join(f"{name}={value if value != '' else '(none)'}" for name, value in labels.items()) or \
        "the grid's options"


def write_markdown(path, summary, grid=None):
    """results.md: the configurations ranked by mean test accuracy, the best named first, the failures after."""
    labels = summary["labels"]
    configurations = summary["configurations"]
    lines = [f"# Grid {grid.name if grid else Path(path).parent.name}", ""]
    shared = summary.get("shared", {})
    source = f"From `{grid.source}`; o" if grid is not None and grid.source else "O"
    lines.append(f"{source}ptions shared by every run: "
                 + (", ".join(f"`{key}={value}`" for key, value in shared.items()) or "none") + ".")
    lines.append(f"{plural(len(configurations), 'configuration')}, {plural(summary['runs'], 'run')}: {summary['done']} finished, "
                 f"{len(summary['failed'])} failed. Last invocation: {summary['ran']} runs in "
                 f"{summary['wall_seconds']:.1f} s on {summary['scheduler']} ({summary['skipped']} skipped as done already).")
    lines.append("")
    best = next((item for item in configurations if item["mean"] is not None), None)
    if best is not None:
        spread = f" ± {best['sd'] * 100:.2f}" if best["sd"] is not None else ""
        lines += [f"**Best: {describe_labels(best['labels'])}**: test accuracy {percent(best['mean'])}{spread} "
                  f"over {best['runs']} seed{'s' if best['runs'] != 1 else ''}.", ""]
    header = ["rank", *labels, "test accuracy: mean ± sd", "min–max", "seeds", "best val accuracy", "epochs",
              "s per run", "images/s"]
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for rank, item in enumerate(configurations, 1):
        spread = f" ± {item['sd'] * 100:.2f}" if item["sd"] is not None else ""
        cells = [str(rank) if item["mean"] is not None else "–",
                 *(str(item["labels"].get(name, "")) or "(none)" for name in labels),
                 f"{percent(item['mean'])}{spread}" if item["mean"] is not None else "not run / failed",
                 f"{percent(item['min'])}–{percent(item['max'])}" if item["runs"] > 1 else "",
                 f"{item['runs']}/{item['seeds']}", percent(item["best_val_accuracy"]),
                 "" if item["epochs"] is None else f"{item['epochs']:g}",
                 "" if item["seconds"] is None else f"{item['seconds']:.1f}",
                 "" if item["images_per_second"] is None else f"{item['images_per_second']:,.0f}"]
        lines.append("| " + " | ".join(cells) + " |")
    if summary["failed"]:
        lines += ["", "## Failed runs", "", "| " + " | ".join([*labels, "seed", "error"]) + " |",
                  "|" + "---|" * (len(labels) + 2)]
        for row in summary["failed"]:
            error = (row.get("error") or "").replace("|", "\\|").replace("\n", " ")
            lines.append("| " + " | ".join([*(row.get(name, "") or "(none)" for name in labels), row["seed"],
                                            error]) + " |")
    lines += ["", "Accuracy is on the whole test set; the spread is the standard deviation over seeds. "
              "results.csv has every run (its full options in the config column)."]
    Path(path).write_text("\n".join(lines) + "\n")


def write_plots(out, summary):
    """accuracy_<axis>.png for each label with more than one value: each run's test accuracy, and the mean."""
    from minicnn.plots import grid_axis

    paths = []
    for name in summary["labels"]:
        points = [(item["labels"].get(name), accuracy) for item in summary["configurations"]
                  for accuracy in item["accuracies"]]
        if len({value for value, _ in points}) < 2:
            continue
        figure = grid_axis(name, points)
        path = Path(out) / f"accuracy_{name}.png"
        figure.savefig(path)
        paths.append(path)
    return paths


def worker_name():
    """host:pid of the process running a run (results.csv's worker column)."""
    return f"{socket.gethostname()}:{os.getpid()}"
