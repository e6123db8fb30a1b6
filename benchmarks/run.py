"""minicnn's benchmark: training and inference speed, start-up time and memory against PyTorch and Keras.

    python benchmarks/run.py            # full run, about 10-15 minutes on 2 cores
    python benchmarks/run.py --quick    # about a minute: seed CNN only, fewer rounds and contenders

Every contender runs in its own long-lived worker process (benchmarks/workers/*.py, JSON over stdin/stdout):
minicnn with its Numba kernels, minicnn with its NumPy twins, PyTorch eager (NCHW and channels_last) and Keras 3
(JAX and TensorFlow backends; a Keras backend is fixed per process). This driver asks them in turn, round by
round, to time one thing each (every contender once per round, rotating who goes first), so all of them share
the same noisy periods of a shared machine. Only one contender works at a time; the others wait on a pipe.
Warm-up (JIT compilation, tracing) is excluded; medians over rounds are reported, and ratios are the median of
per-round ratios against PyTorch eager NCHW.

Results go to benchmarks/results/ (results.md, results.json, results.png). See benchmarks/README.md.
"""
from __future__ import annotations

import argparse
import datetime
import importlib.metadata
import importlib.util
import json
import os
import platform
import select
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
WORKERS = os.path.join(HERE, "workers")
sys.path.insert(0, HERE)

import common  # noqa: E402
from common import CONTENDERS, MODEL_LABELS, REFERENCE  # noqa: E402

# what each measurement is: (key, label, unit, higher is better)
METRICS = {
    "train32": ("training, batch 32", "images/s", True),
    "train128": ("training, batch 128", "images/s", True),
    "infer1000": ("inference, batch 1000", "images/s", True),
    "latency1": ("single-image predict latency", "ms", False),
}
# the libraries each contender needs (checked without importing them)
NEEDS = {"minicnn": ("minicnn", "numba"), "minicnn-numpy": ("minicnn", "numba"),
         "minicnn-reference": ("minicnn", "numba"), "torch": ("torch",),
         "torch-cl": ("torch",), "keras-jax": ("keras", "jax", "jaxlib"), "keras-tf": ("keras", "tensorflow"),
         "torch-compile": ("torch",), "jax": ("jax", "jaxlib"), "ort": ("onnxruntime", "onnx", "torch")}
# the contenders the one-process-per-measurement tests (start-up, peak memory) know how to run
SIDE_CAPABLE = ("minicnn", "minicnn-numpy", "minicnn-reference", "torch", "torch-cl", "keras-jax", "keras-tf")
GEMM_SIZE = 1024  # the float32 GEMM ceiling: NumPy's sgemm of two GEMM_SIZE x GEMM_SIZE matrices, default threads
# a cell's target (issue 18): at least this many times the fastest peer, or, where that peer already runs above
# GEMM_BOUND of the GEMM ceiling in nominal FLOP/s, at least GEMM_SHARE of the ceiling
PEER_RATIO, GEMM_BOUND, GEMM_SHARE = 1.5, 0.6, 0.9
QUICK_CONTENDERS = ("minicnn", "minicnn-numpy", "minicnn-reference", "torch", "keras-tf")
QUIET_CORES = 0.25  # a measurement block is "quiet" if other processes used less than this many cores meanwhile
MIN_QUIET_BLOCKS = 2  # medians use only quiet rounds when a task has at least this many
MEMORY_STEPS = {"quick": 3, "full": 10}


# ---------------------------------------------------------------- settings
def parse_args(argv=None):
    parser = argparse.ArgumentParser(description="Benchmark minicnn against PyTorch eager and Keras 3; results go to "
                                                 "benchmarks/results/ (see benchmarks/README.md).")
    parser.add_argument("--quick", action="store_true",
                        help="about a minute: seed CNN only; minicnn (both kernel sets), PyTorch NCHW and Keras/TF "
                             "(skips PyTorch channels_last and Keras/JAX); 3 rounds of 0.2 s; fresh-process start-up "
                             "(1 round, no first-train-step timing) and peak memory for minicnn (Numba) only, and for "
                             "peers only if --only names them")
    parser.add_argument("--only", default=None,
                        help="comma-separated contenders or groups: minicnn (both kernel sets), minicnn-numba, "
                             "minicnn-numpy, torch (both layouts), torch-nchw, torch-cl, keras (both backends), "
                             "keras-jax, keras-tf")
    parser.add_argument("--models", default=None, help="comma-separated subset of " + ",".join(common.MODELS) +
                                                       " (default: all; --quick: seed)")
    parser.add_argument("--rounds", type=int, default=None, help="measurement rounds (default 5; --quick 3)")
    parser.add_argument("--budget", type=float, default=None,
                        help="seconds each contender spends on one measurement per round (default 0.6; --quick 0.2)")
    parser.add_argument("--steps", type=int, default=100000,
                        help="at most this many training/inference steps per measurement (latency: 10x as many "
                             "calls; default 100000: the budget stops it first)")
    parser.add_argument("--fresh-rounds", type=int, default=None,
                        help="rounds of fresh-process start-up measurements (default 3; --quick 1; 0 skips)")
    parser.add_argument("--no-memory", action="store_true", help="skip the peak-memory processes")
    parser.add_argument("--no-ladder", action="store_true", help="skip the naive-loops ladder")
    parser.add_argument("--ladder-batch", type=int, default=8, help="batch for the naive-loops ladder (default 8)")
    parser.add_argument("--gap", type=float, default=0.2,
                        help="seconds of quiet between two measurements, so the previous contender's BLAS/OpenMP "
                             "threads stop spinning (default 0.2)")
    parser.add_argument("--wait-quiet", type=float, default=None, metavar="S",
                        help="spend up to S seconds in total waiting for other processes to leave the CPUs alone "
                             "(less than a quarter of a core): up to 60 s before starting, then up to 10 s before "
                             "each measurement block (default 180; --quick 0)")
    parser.add_argument("--env", action="append", default=[], metavar="NAME=VALUE",
                        help="set an environment variable in every worker and child process (repeatable), e.g. "
                             "--env OMP_WAIT_POLICY=PASSIVE; reported in the header")
    parser.add_argument("--openblas-coretype", default=None,
                        help="set OPENBLAS_CORETYPE in the worker processes (e.g. SkylakeX, Haswell; default: inherit)")
    parser.add_argument("--out", default=os.path.join(HERE, "results"), help="output directory (default benchmarks/results/)")
    parser.add_argument("--quiet", action="store_true", help="print only the targets at the end")
    args = parser.parse_args(argv)

    mode = "quick" if args.quick else "full"
    args.mode = mode
    args.rounds = args.rounds if args.rounds is not None else (3 if args.quick else 5)
    args.budget = args.budget if args.budget is not None else (0.2 if args.quick else 0.6)
    args.fresh_rounds = args.fresh_rounds if args.fresh_rounds is not None else (1 if args.quick else 3)
    args.wait_quiet = args.wait_quiet if args.wait_quiet is not None else (0.0 if args.quick else 180.0)
    models = args.models.split(",") if args.models else (["seed"] if args.quick else list(common.MODELS))
    unknown = [m for m in models if m not in common.MODELS]
    if unknown:
        parser.error(f"unknown model(s) {unknown}; choose from {common.MODELS}")
    args.explicit_models = bool(args.models)
    args.models = models
    if args.only:
        wanted = []
        for name in args.only.split(","):
            name = name.strip().lower()
            group = common.GROUPS.get(name, (name,))
            for key in group:
                if key not in CONTENDERS:
                    parser.error(f"unknown contender {name!r}; choose from {list(CONTENDERS)} or {list(common.GROUPS)}")
                if key not in wanted:
                    wanted.append(key)
        args.contenders = [key for key in CONTENDERS if key in wanted]
    else:
        args.contenders = list(QUICK_CONTENDERS if args.quick else CONTENDERS)
    # who gets the slow one-process-per-measurement tests (start-up, memory): in --quick, minicnn with its Numba
    # kernels, and peers only if --only names them
    args.side_contenders = [key for key in args.contenders if key in SIDE_CAPABLE and
                            (not args.quick or key == "minicnn" or (args.only and not key.startswith("minicnn")))]
    for setting in args.env:
        if "=" not in setting or not setting.split("=", 1)[0]:
            parser.error(f"--env needs NAME=VALUE, got {setting!r}")
    if args.rounds < 1 or args.budget <= 0 or args.steps < 1:
        parser.error("--rounds and --steps must be at least 1 and --budget positive")
    return args


def log(args, message):
    if not args.quiet:
        print(message, flush=True)


# ---------------------------------------------------------------- environment
def version_of(distribution):
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def cpu_model():
    try:
        with open("/proc/cpuinfo") as file:
            for line in file:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def git_revision():
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                              timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "minicnn"], cwd=ROOT, capture_output=True,
                               text=True, timeout=10).stdout.strip()
        return f"{head}{' + uncommitted changes in minicnn/' if dirty else ''}" if head else None
    except (OSError, subprocess.SubprocessError):
        return None


def environment(worker_env, extra_env=()):
    versions = {name: version_of(dist) for name, dist in (
        ("minicnn", "minicnn"), ("numpy", "numpy"), ("numba", "numba"), ("torch", "torch"), ("keras", "keras"),
        ("jax", "jax"), ("jaxlib", "jaxlib"), ("tensorflow", "tensorflow"), ("threadpoolctl", "threadpoolctl"),
        ("onnxruntime", "onnxruntime"), ("onnx", "onnx"), ("matplotlib", "matplotlib"))}
    try:
        affinity = len(os.sched_getaffinity(0))
    except AttributeError:
        affinity = None
    return {"date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC"),
            "cpu": cpu_model(), "logical_cpus": os.cpu_count(), "usable_cpus": affinity,
            "python": platform.python_version(), "platform": platform.platform(), "versions": versions,
            "minicnn_git": git_revision(), "env": common.relevant_env(worker_env, extra=extra_env),
            "load_average_start": list(os.getloadavg()) if hasattr(os, "getloadavg") else None}


def worker_environment(args):
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([ROOT] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    env["PYTHONUNBUFFERED"] = "1"
    if args.openblas_coretype:
        env["OPENBLAS_CORETYPE"] = args.openblas_coretype
    for setting in args.env:
        name, value = setting.split("=", 1)
        env[name] = value
    return env


def available(key):
    missing = [module for module in NEEDS[key] if importlib.util.find_spec(module) is None]
    return (False, f"not installed: {', '.join(missing)}") if missing else (True, "")


# ---------------------------------------------------------------- workers
def cpu_seconds(pid):
    """CPU time (user + system, all threads) used so far by process ``pid``, or None if unknown."""
    try:
        with open(f"/proc/{pid}/stat") as file:
            fields = file.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        try:
            import psutil

            times = psutil.Process(pid).cpu_times()
            return times.user + times.system
        except Exception:
            return None


def machine_busy_seconds():
    """CPU-seconds all CPUs of the machine have been busy since boot (including time the hypervisor stole for
    other virtual machines), from /proc/stat; None where that file does not exist."""
    try:
        with open("/proc/stat") as file:
            fields = [int(v) for v in file.readline().split()[1:9]]
    except (OSError, ValueError):
        return None
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def own_cpu_seconds(pids):
    """CPU-seconds used by this driver and the given processes."""
    times = os.times()
    total = times.user + times.system
    for pid in pids:
        value = cpu_seconds(pid)
        total += value or 0.0
    return total


def wait_until_quiet(limit, log_fn=None, threshold=QUIET_CORES, window=5.0, pids=()):
    """Wait (at most about ``limit`` seconds) until processes other than this driver and ``pids`` use less than
    ``threshold`` cores over a ``window``-second sample. Returns (seconds waited, quiet reached, last load in
    cores); (0, None, None) where the machine's CPU counters cannot be read."""
    start = time.perf_counter()
    last_log = -30.0
    while True:
        busy0, own0 = machine_busy_seconds(), own_cpu_seconds(pids)
        if busy0 is None:
            return 0.0, None, None
        time.sleep(window)
        load = max(0.0, (machine_busy_seconds() - busy0) - (own_cpu_seconds(pids) - own0)) / window
        waited = time.perf_counter() - start
        if load < threshold or waited + window > limit:
            return waited, load < threshold, load
        if log_fn is not None and waited - last_log >= 30:
            last_log = waited
            log_fn(f"  machine busy: other processes use {load:.2f} cores; waiting ({waited:.0f}/{limit:.0f} s)")


class WorkerError(RuntimeError):
    pass


class Worker:
    """One contender's long-lived process, spoken to with JSON lines."""

    def __init__(self, key, env, log_dir):
        self.key = key
        self.label, script, extra = CONTENDERS[key]
        self.log_path = os.path.join(log_dir, f"{key}.log")
        self.log_file = open(self.log_path, "w")
        self.process = subprocess.Popen([sys.executable, os.path.join(WORKERS, script), *extra],
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.log_file,
                                        env=env, text=True, bufsize=1, cwd=ROOT)
        self.info = None
        self.error = None

    @property
    def alive(self):
        return self.error is None and self.process.poll() is None

    def log_tail(self, lines=15):
        try:
            with open(self.log_path) as file:
                return "".join(file.readlines()[-lines:])
        except OSError:
            return ""

    def request(self, message, timeout=600.0):
        if not self.alive:
            raise WorkerError(self.error or f"{self.key} worker has exited")
        try:
            self.process.stdin.write(json.dumps(message) + "\n")
            self.process.stdin.flush()
        except (BrokenPipeError, OSError) as error:
            self.error = f"worker pipe closed ({error}); log tail:\n{self.log_tail()}"
            raise WorkerError(self.error) from None
        ready, _, _ = select.select([self.process.stdout], [], [], timeout)
        line = self.process.stdout.readline() if ready else None
        if not line:
            why = "timed out" if not ready else "exited"
            self.error = f"{self.key} worker {why} during {message.get('op')}; log tail:\n{self.log_tail()}"
            self.stop()
            raise WorkerError(self.error)
        answer = json.loads(line)
        if not answer.get("ok"):
            raise WorkerError(f"{self.key}: {message.get('op')} failed: {answer.get('error')}")
        return answer.get("result")

    def stop(self):
        if self.process.poll() is None:
            try:
                self.process.stdin.write(json.dumps({"op": "quit"}) + "\n")
                self.process.stdin.flush()
                self.process.wait(timeout=20)
            except (OSError, subprocess.TimeoutExpired, ValueError):
                self.process.kill()
                self.process.wait()
        self.log_file.close()


# ---------------------------------------------------------------- measurements
class Bench:
    def __init__(self, args):
        self.args = args
        self.workers = {}
        self.unavailable = {}
        self.samples = {}  # (model, metric) -> {contender: [value per round or None]}
        self.errors = []
        self.idle_cpu = 0.0
        self.busy_wall = 0.0
        self.idle_cpu_unknown = False
        self.foreign_cpu = 0.0  # CPU-seconds used by other processes on the machine during measurements
        self.foreign_unknown = False
        self.round_foreign = []  # per round: cores used by other processes on average
        self.block_loads = {}  # (model, metric) -> per round: cores other processes used during that block
        self.waited = 0.0  # seconds spent waiting for a quiet machine (budget: --wait-quiet)
        self.last_load = None
        self.first_calls = {}  # (model, metric) -> {contender: seconds of its first call (JIT compilation, tracing)}
        self.gemm = []  # per round: {"gflops": ..., "other_cores": ...} of the float32 GEMM ceiling

    def supports(self, key, metric):
        """Whether contender ``key`` measures ``metric`` (ONNX Runtime does not train)."""
        worker = self.workers.get(key)
        metrics = (worker.info or {}).get("metrics") if worker is not None else None
        return metrics is None or metric in metrics

    def start_workers(self, env, log_dir):
        for key in self.args.contenders:
            ok, why = available(key)
            if ok:
                self.workers[key] = Worker(key, env, log_dir)
            else:
                self.unavailable[key] = why
                log(self.args, f"  skipping {CONTENDERS[key][0]}: {why} (pip install -e .[bench])")
        for key, worker in list(self.workers.items()):
            try:
                worker.info = worker.request({"op": "hello"}, timeout=300)
                log(self.args, f"  started {worker.label} (pid {worker.info.get('pid')})")
            except WorkerError as error:
                self.unavailable[key] = f"worker failed to start: {str(error).splitlines()[0]}"
                self.errors.append(str(error))
                worker.stop()
                del self.workers[key]

    def job(self, worker, message, timeout=600.0):
        """Run one request while the other workers idle; track CPU the idle ones burn meanwhile."""
        others = {key: cpu_seconds(w.process.pid) for key, w in self.workers.items() if w is not worker and w.alive}
        pids = [w.process.pid for w in self.workers.values() if w.alive]
        machine_before, own_before = machine_busy_seconds(), own_cpu_seconds(pids)
        start = time.perf_counter()
        try:
            return worker.request(message, timeout=timeout)
        finally:
            self.busy_wall += time.perf_counter() - start
            for key, before in others.items():
                after = cpu_seconds(self.workers[key].process.pid)
                if before is None or after is None:
                    self.idle_cpu_unknown = True
                else:
                    self.idle_cpu += after - before
            machine_after = machine_busy_seconds()
            if machine_before is None or machine_after is None:
                self.foreign_unknown = True
            else:
                own = own_cpu_seconds(pids) - own_before
                self.foreign_cpu += max(0.0, (machine_after - machine_before) - own)
            time.sleep(self.args.gap)

    def tasks(self):
        return [(model, metric) for model in self.args.models for metric in METRICS]

    def request_for(self, model, metric, warmup=False, key=None):
        """The request that measures ``metric`` once. Warm-up: at least two calls (the first one compiles or
        traces), one for the NumPy twins (nothing to compile)."""
        args = self.args
        budget = min(0.3, args.budget) if warmup else args.budget
        steps = args.steps
        if metric == "latency1":
            return {"op": "latency", "model": model, "budget": budget, "calls": 5 if warmup else steps * 10}
        op, batch = ("train", int(metric[5:])) if metric.startswith("train") else ("infer", int(metric[5:]))
        return {"op": op, "model": model, "batch": batch, "budget": budget, "steps": 1000 if warmup else steps,
                "min_steps": (1 if key in ("minicnn-numpy", "minicnn-reference") else 2) if warmup else 1}

    def warm_up(self):
        for model, metric in self.tasks():
            for key, worker in list(self.workers.items()):
                if not worker.alive or not self.supports(key, metric):
                    continue
                try:
                    answer = self.job(worker, self.request_for(model, metric, warmup=True, key=key), timeout=900)
                    if answer.get("first_call_s") is not None:
                        self.first_calls.setdefault((model, metric), {})[key] = answer["first_call_s"]
                except WorkerError as error:
                    self.errors.append(f"warm-up {key} {model} {metric}: {error}")

    def measure_rounds(self):
        keys = list(self.workers)
        for round_index in range(self.args.rounds):
            start = time.perf_counter()
            foreign_start, wall_start = self.foreign_cpu, self.busy_wall
            shift = round_index % max(1, len(keys))
            order = keys[shift:] + keys[:shift]
            for model, metric in self.tasks():
                self.pause_if_busy()
                row = self.samples.setdefault((model, metric), {key: [] for key in keys})
                block_foreign, block_wall = self.foreign_cpu, self.busy_wall
                for key in order:
                    worker = self.workers[key]
                    value = None
                    if worker.alive and self.supports(key, metric):
                        try:
                            value = self.job(worker, self.request_for(model, metric))["value"]
                        except WorkerError as error:
                            self.errors.append(f"round {round_index + 1} {key} {model} {metric}: {error}")
                    row[key].append(value)
                wall = self.busy_wall - block_wall
                load = (self.foreign_cpu - block_foreign) / wall if wall > 0 and not self.foreign_unknown else None
                self.block_loads.setdefault((model, metric), []).append(load)
                self.last_load = load
            self.measure_gemm()
            busy = self.busy_wall - wall_start
            foreign = (self.foreign_cpu - foreign_start) / busy if busy > 0 and not self.foreign_unknown else None
            self.round_foreign.append(foreign)
            log(self.args, f"  round {round_index + 1}/{self.args.rounds} done in {time.perf_counter() - start:.1f} s"
                           + ("" if foreign is None else f" (other processes used {foreign:.2f} cores meanwhile)"))

    def measure_gemm(self):
        """One block of the round: the machine's float32 GEMM ceiling, NumPy's sgemm (OpenBLAS, its default threads)
        in minicnn's worker."""
        worker = self.workers.get("minicnn") or next((w for k, w in self.workers.items() if k.startswith("minicnn")),
                                                     None)
        if worker is None or not worker.alive:
            return
        self.pause_if_busy()
        block_foreign, block_wall = self.foreign_cpu, self.busy_wall
        try:
            answer = self.job(worker, {"op": "gemm", "size": GEMM_SIZE, "budget": self.args.budget})
        except WorkerError as error:
            self.errors.append(f"gemm: {error}")
            return
        wall = self.busy_wall - block_wall
        load = (self.foreign_cpu - block_foreign) / wall if wall > 0 and not self.foreign_unknown else None
        self.gemm.append({**answer, "other_cores": load})

    def pause_if_busy(self):
        """Before a measurement block: if the last block was not quiet, wait (up to 10 s, within the --wait-quiet
        budget) for other processes to leave the CPUs alone."""
        remaining = self.args.wait_quiet - self.waited
        if remaining < 1 or (self.last_load is not None and self.last_load < QUIET_CORES):
            return
        pids = [w.process.pid for w in self.workers.values() if w.alive]
        waited, _, _ = wait_until_quiet(min(10.0, remaining), window=1.0, pids=pids)
        self.waited += waited

    def ladder(self):
        worker = self.workers.get("minicnn")
        if worker is None or not worker.alive:
            return None
        try:
            return self.job(worker, {"op": "ladder", "batch": self.args.ladder_batch,
                                     "budget": min(0.5, self.args.budget),
                                     "naive_repeats": 1 if self.args.quick else 2}, timeout=900)
        except WorkerError as error:
            self.errors.append(f"ladder: {error}")
            return None

    def save_models(self, directory, model="seed"):
        """Ask each worker of the start-up test to save ``model`` in its own format; returns {contender: path}."""
        paths = {}
        suffix = {"minicnn": ".npz", "minicnn-numpy": ".npz", "minicnn-reference": ".npz", "torch": ".pt",
                  "torch-cl": ".pt",
                  "keras-jax": ".keras", "keras-tf": ".keras"}
        for key in self.args.side_contenders:
            worker = self.workers.get(key)
            if worker is None or not worker.alive:
                continue
            try:
                paths[key] = self.job(worker, {"op": "save", "model": model,
                                               "path": os.path.join(directory, f"{key}-{model}{suffix[key]}")})["path"]
            except WorkerError as error:
                self.errors.append(f"save {key}: {error}")
        return paths

    def stop(self):
        for worker in self.workers.values():
            worker.stop()


def run_child(arguments, env, timeout):
    """Run a one-shot child (workers/oneshot.py); returns (its JSON result, wall seconds)."""
    start = time.perf_counter()
    completed = subprocess.run([sys.executable, os.path.join(WORKERS, "oneshot.py"), *arguments],
                               capture_output=True, text=True, env=env, timeout=timeout, cwd=ROOT)
    wall = time.perf_counter() - start
    lines = [line for line in completed.stdout.splitlines() if line.startswith("{")]
    if completed.returncode != 0 or not lines:
        tail = "\n".join(completed.stderr.strip().splitlines()[-8:])
        raise WorkerError(f"oneshot {' '.join(arguments[:2])} exited {completed.returncode}:\n{tail}")
    return json.loads(lines[-1]), wall


def fresh_process(bench, paths, env, rounds, tmp_root, model="seed"):
    """Import + load + predict one image in fresh processes, round by round. For minicnn with Numba kernels:
    once with an empty JIT cache (NUMBA_CACHE_DIR = a new folder), then again with that folder warm."""
    results = {}
    if rounds < 1:
        return results
    for round_index in range(rounds):
        cache_dir = tempfile.mkdtemp(prefix="numba-cache-", dir=tmp_root)
        for key in bench.args.side_contenders:
            if key not in paths:
                continue
            runs = {"minicnn": [("empty", not bench.args.quick), ("warm", False)],
                    "minicnn-numpy": [("empty", False)]}.get(key, [("warm", False)])
            for cache, train_step in runs:
                child_env = dict(env)
                if key == "minicnn":
                    child_env["NUMBA_CACHE_DIR"] = cache_dir
                elif key == "minicnn-numpy":  # the twins should compile nothing: show it with an empty cache
                    child_env["NUMBA_CACHE_DIR"] = tempfile.mkdtemp(prefix="numba-cache-numpy-", dir=tmp_root)
                arguments = ["fresh", key, model, paths[key]] + (["--train-step"] if train_step else [])
                try:
                    result, wall = run_child(arguments, child_env, timeout=300)
                except (WorkerError, subprocess.TimeoutExpired) as error:
                    bench.errors.append(f"fresh process {key} ({cache} cache): {error}")
                    continue
                if not train_step:
                    result["process_wall_s"] = wall
                entry = results.setdefault(key, {}).setdefault(cache, {})
                for name, value in result.items():
                    entry.setdefault(name, []).append(value)
                time.sleep(bench.args.gap)
        shutil.rmtree(cache_dir, ignore_errors=True)
        log(bench.args, f"  fresh-process round {round_index + 1}/{rounds} done")
    return {key: {cache: {name: {"median": statistics.median(values), "samples": values}
                          for name, values in entry.items()}
                  for cache, entry in per_cache.items()}
            for key, per_cache in results.items()}


def peak_memory(bench, env, models, steps):
    results = {}
    for model in models:
        for key in bench.args.side_contenders:
            if key in bench.unavailable:
                continue
            count = max(2, steps // 3) if key in ("minicnn-numpy", "minicnn-reference") else steps
            try:
                result, wall = run_child(["memory", key, model, "128", str(count)], env, timeout=900)
            except (WorkerError, subprocess.TimeoutExpired) as error:
                bench.errors.append(f"memory {key} {model}: {error}")
                continue
            results.setdefault(model, {})[key] = result
            time.sleep(bench.args.gap)
        log(bench.args, f"  peak memory of {MODEL_LABELS[model]} measured")
    return results


# ---------------------------------------------------------------- statistics
def summarize(samples, block_loads):
    """Medians per contender and medians of per-round ratios against the reference contenders.

    Only the quiet rounds of a task count (other processes used less than QUIET_CORES while its contenders were
    measured), when there are at least MIN_QUIET_BLOCKS of them; otherwise all rounds, and the task is marked
    noisy. Returns (summary, rounds): rounds[model][metric] says which rounds were used."""
    out, rounds = {}, {}
    for (model, metric), row in samples.items():
        higher_better = METRICS[metric][2]
        loads = block_loads.get((model, metric), [])
        quiet = [i for i, load in enumerate(loads) if load is not None and load < QUIET_CORES]
        noisy = len(quiet) < MIN_QUIET_BLOCKS
        used = list(range(len(loads))) if noisy else quiet
        rounds.setdefault(model, {})[metric] = {"other_cores": loads, "quiet": [i + 1 for i in quiet],
                                                "used": [i + 1 for i in used], "noisy": noisy}
        entry = {}
        for key, all_values in row.items():
            values = [all_values[i] for i in used if i < len(all_values)]
            reference_values = {ref: [row[ref][i] for i in used if i < len(row[ref])] for ref in row}
            clean = [v for v in values if v is not None]
            item = {"median": statistics.median(clean) if clean else None, "samples": all_values,
                    "unit": METRICS[metric][1]}
            for reference in (REFERENCE, "keras-tf"):
                if reference not in row:
                    continue
                ratios = [(v / r if higher_better else r / v) for v, r in zip(values, reference_values[reference])
                          if v is not None and r is not None and v > 0 and r > 0]
                item[f"ratio_vs_{reference}"] = statistics.median(ratios) if ratios else None
            entry[key] = item
        out.setdefault(model, {})[metric] = entry
    return out, rounds


def gemm_ceiling(samples):
    """The float32 GEMM ceiling from the per-round GEMM blocks: the best sgemm rate of the run (a ceiling: other
    processes only ever lower it; two BLAS threads collapse when another process takes a core), with the median
    over quiet rounds (all rounds when fewer than MIN_QUIET_BLOCKS were quiet) of each round's best for reference."""
    if not samples:
        return None
    quiet = [s for s in samples if s.get("other_cores") is not None and s["other_cores"] < QUIET_CORES]
    used = quiet if len(quiet) >= MIN_QUIET_BLOCKS else samples
    return {"gflops": max(s["gflops"] for s in samples), "size": samples[0]["size"],
            "median_gflops": statistics.median(s["gflops"] for s in used),
            "rounds_used": len(used), "rounds": len(samples), "noisy": len(quiet) < MIN_QUIET_BLOCKS,
            "samples": samples}


def versus_peers(samples, rounds_used, summary, ceiling, key="minicnn"):
    """Per model and metric: minicnn (``key``) against the fastest peer (every contender that is not minicnn) in
    the same rounds, its nominal FLOP rate and share of the GEMM ceiling, and the issue's target for the cell."""
    rows = []
    gflops_ceiling = ceiling["gflops"] if ceiling else None
    for (model, metric), row in samples.items():
        higher_better = METRICS[metric][2]
        medians = {k: summary[model][metric][k]["median"] for k in row if summary[model][metric][k]["median"]}
        if key not in medians:
            continue
        peers = {k: v for k, v in medians.items() if not k.startswith("minicnn")}
        used = [i - 1 for i in rounds_used[model][metric]["used"]]
        kind = "train" if metric.startswith("train") else "forward"
        flops = None if metric == "latency1" else common.nominal_flops(model)[kind]
        entry = {"model": model, "metric": metric, "value": medians[key], "peers": peers,
                 "noisy": rounds_used[model][metric]["noisy"], "flops_per_image": flops}
        if flops:
            entry["gflops"] = medians[key] * flops / 1e9
            entry["share"] = entry["gflops"] / gflops_ceiling if gflops_ceiling else None
        if peers:
            fastest = (max if higher_better else min)(peers, key=peers.get)
            ratios = [(a / b if higher_better else b / a) for a, b in
                      ((row[key][i], row[fastest][i]) for i in used if i < len(row[key]) and i < len(row[fastest]))
                      if a and b]
            entry.update(fastest=fastest, ratio=statistics.median(ratios) if ratios else None)
            if flops and gflops_ceiling:
                entry["peer_share"] = peers[fastest] * flops / 1e9 / gflops_ceiling
            if metric == "latency1":
                entry["target"] = "at or below every peer's latency"
                entry["status"] = "PASS" if entry["ratio"] and entry["ratio"] >= 1.0 else "FAIL"
            elif entry.get("peer_share") is not None and entry["peer_share"] > GEMM_BOUND:
                entry["target"] = f">= {GEMM_SHARE:.0%} of the GEMM ceiling (peer above {GEMM_BOUND:.0%})"
                entry["status"] = "PASS" if entry["share"] >= GEMM_SHARE else "FAIL"
            else:
                entry["target"] = f">= {PEER_RATIO}x the fastest peer"
                entry["status"] = "PASS" if entry["ratio"] and entry["ratio"] >= PEER_RATIO else "FAIL"
        else:
            entry.update(fastest=None, ratio=None, target="no peer measured", status="SKIP")
        rows.append(entry)
    return rows


def targets(summary, fresh, memory):
    """The issue's targets as (name, status, measured text)."""
    lines = []

    def ratio(metric, reference):
        item = summary.get("seed", {}).get(metric, {}).get("minicnn")
        return None if item is None else item.get(f"ratio_vs_{reference}")

    def check(name, value, threshold, peer, fmt="{:.3f}x", at_most=False):
        if peer is not None:
            lines.append({"target": name, "status": "SKIP", "measured": f"{peer} not measured",
                          "threshold": threshold})
            return
        if value is None:
            lines.append({"target": name, "status": "SKIP", "measured": "not measured", "threshold": threshold})
            return
        ok = value <= threshold if at_most else value >= threshold
        lines.append({"target": name, "status": "PASS" if ok else "FAIL", "measured": fmt.format(value),
                      "value": value, "threshold": threshold})

    def missing(*keys):
        for key in keys:
            present = any(key in per_metric for per_model in summary.values() for per_metric in per_model.values())
            if not present:
                return CONTENDERS[key][0]
        return None

    for batch, vs_torch, vs_keras in ((128, 2.0, 1.3), (32, 2.0, 1.5)):
        metric = f"train{batch}"
        check(f"seed CNN training, batch {batch}: >= {vs_torch}x PyTorch eager (NCHW)",
              ratio(metric, "torch"), vs_torch, missing("minicnn", "torch"))
        check(f"seed CNN training, batch {batch}: >= {vs_keras}x Keras/TensorFlow",
              ratio(metric, "keras-tf"), vs_keras, missing("minicnn", "keras-tf"))
    check("seed CNN inference, batch 1000: >= 1.5x Keras/TensorFlow", ratio("infer1000", "keras-tf"), 1.5,
          missing("minicnn", "keras-tf"))
    check("seed CNN single-image predict latency: no worse than PyTorch eager (ratio >= 1.0)",
          ratio("latency1", "torch"), 1.0, missing("minicnn", "torch"))
    warm = fresh.get("minicnn", {}).get("warm", {}).get("total_s", {}).get("median")
    # The first small predict of a process runs on the NumPy twins (minicnn/fast/startup.py: tiered start) and compiles
    # nothing; the second loads Numba and compiles the kernels when the cache is empty. So the first-run-ever
    # figure is taken through the second predict: it includes compiling every kernel a prediction uses.
    empty = fresh.get("minicnn", {}).get("empty", {}).get("through_second_s", {}).get("median")
    check("fresh process import+load+predict, warm JIT cache: <= 0.5 s", warm, 0.5, None, "{:.3f} s", True)
    check("fresh process import+load+predict twice (the second compiles the kernels), empty JIT cache "
          "(first run ever): <= 10 s", empty, 10.0, None, "{:.2f} s", True)
    peak = memory.get("seed", {}).get("minicnn", {}).get("peak_rss_mb")
    check("peak memory training the seed CNN at batch 128: <= 500 MB", peak, 500.0, None, "{:.0f} MB", True)
    return lines


# ---------------------------------------------------------------- output
def fmt_value(value, unit):
    if value is None:
        return "—"
    if unit == "ms":
        return f"{value:.3f} ms" if value < 1 else f"{value:.2f} ms"
    return f"{value:,.0f}" if value >= 100 else f"{value:.1f}"


def fmt_ratio(value):
    return "" if value is None else f" ({value:.2f}x)"


AVX512_CORETYPES = ("skylakex", "cooperlake", "sapphirerapids")  # OpenBLAS's core types with AVX-512 kernels


def openblas_held_back(coretype):
    """A warning when OPENBLAS_CORETYPE names kernels without AVX-512 on a CPU that has it (some machines set
    Haswell for the whole fleet): OpenBLAS's sgemm, and so minicnn's products, then run at about half speed
    (measured 104-109 against 192-210 GFLOP/s on one core of an AMD EPYC; docs/performance.md). None otherwise."""
    if not coretype or coretype.lower() in AVX512_CORETYPES:
        return None
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            flags = cpuinfo.read().split()
    except OSError:
        return None
    if "avx512f" not in flags:
        return None
    return (f"OPENBLAS_CORETYPE={coretype} on a CPU with AVX-512: OpenBLAS uses its {coretype} kernels, whose "
            "sgemm ran at about half the speed of the AVX-512 ones on such a CPU; minicnn's matrix products (and "
            "the GEMM ceiling) are held back with it, the peers' (MKL, oneDNN, XLA, MLAS) are not. Unset it "
            "(env -u OPENBLAS_CORETYPE) to let OpenBLAS choose")


def header_lines(result):
    env, meta = result["environment"], result["meta"]
    versions = ", ".join(f"{name} {version}" for name, version in env["versions"].items() if version)
    lines = [f"- Date: {env['date']}; mode: {meta['mode']} ({meta['rounds']} rounds, {meta['budget']} s per "
             f"measurement, warm-up excluded); run took {meta['duration_s']:.0f} s",
             f"- Command: `{meta['command']}`; time per phase (s): "
             + ", ".join(f"{name} {seconds:.0f}" for name, seconds in meta.get("phases_s", {}).items()),
             f"- CPU: {env['cpu']}; {env['logical_cpus']} logical CPUs ({env['usable_cpus']} usable); "
             f"load average at start {fmt_load(env['load_average_start'])}, at end "
             f"{fmt_load(env.get('load_average_end'))}",
             f"- Python {env['python']} on {env['platform']}",
             f"- Versions: {versions}",
             f"- minicnn source: {env.get('minicnn_git') or 'unknown'}"]
    for key, info in meta["contenders"].items():
        if info.get("info") is None:
            continue
        details = info["info"]
        parts = []
        if details.get("threads"):
            parts.append("threads: " + ", ".join(f"{k} = {v}" for k, v in details["threads"].items()))
        elif key.startswith("minicnn"):
            parts.append("threads: no thread setting found in minicnn's API")
        if details.get("jit_compile") is not None:
            parts.append(f"jit_compile = {details['jit_compile']}")
        if details.get("torch_blas"):
            parts.append(f"torch BLAS: {details['torch_blas']}, oneDNN {'on' if details.get('mkldnn') else 'off'}, "
                         f"CPU capability {details.get('cpu_capability', '?')}")
        blas = [b for b in details.get("blas", []) if b.get("user_api") == "blas"]
        openmp = [b for b in details.get("blas", []) if b.get("user_api") == "openmp"]
        if blas and key.startswith("minicnn"):
            parts.append("NumPy BLAS: " + "; ".join(
                f"{b.get('internal_api')} {b.get('version', '')} (core type {b.get('architecture', '?')}, "
                f"{b.get('threading_layer', '?')}, {b.get('num_threads')} threads)" for b in blas))
        if openmp:
            parts.append("OpenMP: " + "; ".join(f"{b.get('prefix')} ({b.get('num_threads')} threads)" for b in openmp))
        lines.append(f"- {info['label']}: " + "; ".join(parts))
    env_vars = ", ".join(f"{k}={v}" for k, v in env["env"].items()) or "none set"
    lines.append(f"- Environment variables: {env_vars}" + ("" if "OPENBLAS_CORETYPE" in env["env"] else
                                                           " (OPENBLAS_CORETYPE unset: OpenBLAS picked the core type "
                                                           "itself)"))
    held_back = openblas_held_back(env["env"].get("OPENBLAS_CORETYPE"))
    if held_back:
        lines.append(f"- {held_back}")
    idle = meta.get("idle_workers_cpu")
    if idle:
        lines.append(f"- Idle workers used {idle['cpu_s']:.2f} CPU-s during {idle['busy_wall_s']:.0f} s of other "
                     f"contenders' measurements ({idle['percent']:.1f}% of one core): "
                     f"{'no meaningful spinning' if idle['percent'] < 2 else 'SOME SPINNING: ratios less reliable'}")
    other = meta.get("other_processes")
    if other:
        rounds = ", ".join("?" if c is None else f"{c:.2f}" for c in other["per_round_cores"])
        verdict = ("a quiet machine" if other["cores"] < 0.1 else
                   "a busy machine: absolute numbers are low and ratios less reliable; run again when it is quiet"
                   if other["cores"] >= 0.5 else "some background load")
        lines.append(f"- Other processes on the machine (and hypervisor steal) used {other['cores']:.2f} of "
                     f"{env['logical_cpus']} cores on average during the measurements (per round: {rounds}): "
                     f"{verdict}")
    quiet = meta.get("wait_quiet")
    if quiet:
        lines.append(f"- Waited {quiet['waited_s']:.0f} s for a quiet machine before starting: "
                     f"{'reached' if quiet['quiet'] else 'not reached, started anyway'} "
                     f"(other processes then used {quiet['other_cores'] or 0:.2f} cores); "
                     f"{meta.get('waited_s', 0):.0f} s of waiting in all (budget --wait-quiet)")
    for key, why in meta["unavailable"].items():
        lines.append(f"- Not measured: {CONTENDERS[key][0]} ({why})")
    for skipped in meta["skipped"]:
        lines.append(f"- Skipped: {skipped}")
    return lines


def fmt_load(load):
    return "?" if not load else " / ".join(f"{x:.2f}" for x in load)


def markdown(result):
    meta = result["meta"]
    out = ["# minicnn benchmark", ""] + header_lines(result) + [""]
    out += ["## Throughput and latency", "",
            "Median over rounds. In brackets: speed relative to PyTorch eager (NCHW) measured in the same rounds "
            "(median of per-round ratios; above 1 = faster than PyTorch; for latency, PyTorch's time / this one's). "
            "Training = forward + backward + Adam on a prepared float32 batch. Only quiet rounds count (other "
            f"processes used less than {QUIET_CORES} cores while that column was measured) when a column has at "
            f"least {MIN_QUIET_BLOCKS}; a column marked * had fewer and uses every round: read it with care.", ""]
    rounds_used = result.get("rounds_used", {})
    for model, per_metric in result["throughput"].items():
        out += [f"### {MODEL_LABELS[model]}", ""]
        columns = [m for m in METRICS if m in per_metric]
        used = rounds_used.get(model, {})

        def title(metric):
            info = used.get(metric, {})
            mark = "*" if info.get("noisy") else ""
            return f"{METRICS[metric][0]} ({METRICS[metric][1]}){mark}"

        out.append("| contender | " + " | ".join(title(m) for m in columns) + " |")
        out.append("|---|" + "---:|" * len(columns))
        for key in meta["contenders"]:
            if not any(key in per_metric[m] for m in columns):
                continue
            cells = []
            for metric in columns:
                item = per_metric[metric].get(key, {})
                cells.append(fmt_value(item.get("median"), METRICS[metric][1]) +
                             ("" if key == REFERENCE else fmt_ratio(item.get(f"ratio_vs_{REFERENCE}"))))
            out.append(f"| {CONTENDERS[key][0]} | " + " | ".join(cells) + " |")
        if used:
            out += ["", "Rounds used: " + "; ".join(
                f"{METRICS[m][0]}: {len(used[m]['used'])} of {len(used[m]['other_cores'])}"
                + (" (not enough quiet ones)" if used[m]["noisy"] else " quiet") for m in columns if m in used)
                + "."]
        out.append("")
    out += versus_markdown(result)
    fresh = result.get("fresh_process") or {}
    if fresh:
        out += ["## Fresh process: import + load a saved seed CNN + predict one image", "",
                "Timed inside the new process from its first line (import, load, predict; total = their sum). "
                "Second predict = one more one-image predict right after: minicnn (Numba) runs the FIRST small "
                "predict of a process on its NumPy twins without importing Numba (tiered start, "
                "minicnn/fast/startup.py), so the second one pays for importing Numba and loading its kernels from the "
                "JIT cache, or compiling them when the cache is empty; every later predict is fast. "
                "Process wall = from starting the interpreter to its exit, as the parent saw it (it includes the "
                "second predict). minicnn's JIT "
                "cache: empty = NUMBA_CACHE_DIR is a new folder (the first run ever compiles every kernel it "
                "uses); warm = the same folder, second run. The NumPy twins run with an empty cache (they should "
                "compile nothing). Peers have no such cache (n/a). First train step = one batch-32 training step "
                "right after, in the empty-cache process (compiles the training kernels; not in --quick).",
                "", "| contender | JIT cache | import (s) | load (s) | predict (s) | total (s) | second predict (s) "
                "| process wall (s) | first train step (s) |", "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
        for key in meta["contenders"]:
            for cache in ("empty", "warm"):
                entry = fresh.get(key, {}).get(cache)
                if not entry:
                    continue
                label = cache if key.startswith("minicnn") else "n/a"
                cells = [f"{entry[name]['median']:.3f}" if name in entry else "—"
                         for name in ("import_s", "load_s", "predict_s", "total_s", "second_predict_s",
                                      "process_wall_s", "first_train_step_s")]
                out.append(f"| {CONTENDERS[key][0]} | {label} | " + " | ".join(cells) + " |")
        out.append("")
    memory = result.get("memory") or {}
    if memory:
        models = list(memory)
        out += ["## Peak memory while training (batch 128)", "",
                "Peak resident set size (ru_maxrss) of a fresh process that imports the library, builds the model "
                "and trains a few steps; in brackets its resident size after the imports, before the model is built. "
                "MB = 10^6 bytes.", "",
                "| contender | " + " | ".join(MODEL_LABELS[m] for m in models) + " |",
                "|---|" + "---:|" * len(models)]
        for key in meta["contenders"]:
            if not any(key in memory[m] for m in models):
                continue
            cells = []
            for model in models:
                item = memory[model].get(key)
                cells.append("—" if not item else f"{item['peak_rss_mb']:.0f} MB ({item['baseline_rss_mb']:.0f})")
            out.append(f"| {CONTENDERS[key][0]} | " + " | ".join(cells) + " |")
        out.append("")
    ladder = result.get("ladder")
    if ladder:
        batch = ladder[0]["batch"]
        out += [f"## What each technique buys: the seed CNN's convolutions, forward pass, batch {batch}", "",
                "Naive loops = benchmarks/naive.py (Python loops over images, output pixels and filters, NumPy only "
                "for each window's multiply-and-sum); reference = the reference engine's `conv2d_forward` (im2col in "
                "NumPy + one matrix product); Numba = the fast engine's im2col kernel + BLAS sgemm. Median ms per "
                "batch (naive: best of its runs).", "",
                "| layer | input | MACs | naive loops (ms) | reference (ms) | Numba + BLAS (ms) | reference vs naive | "
                "Numba vs reference | max abs diff |", "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
        for row in ladder:
            out.append(f"| {row['layer']} | {'x'.join(map(str, row['input']))} | {row['macs'] / 1e6:.1f} M | "
                       f"{row['naive_ms']:.0f} | {row['numpy_ms']:.2f} | {row['numba_ms']:.3f} | "
                       f"{row['naive_ms'] / row['numpy_ms']:.0f}x | {row['numpy_ms'] / row['numba_ms']:.1f}x | "
                       f"{row['max_abs_diff']:.1e} |")
        seed = result["throughput"].get("seed", {})
        for metric in ("train128", "train32"):
            reference = seed.get(metric, {}).get("minicnn-reference", {}).get("median")
            twin = seed.get(metric, {}).get("minicnn-numpy", {}).get("median")
            fast = seed.get(metric, {}).get("minicnn", {}).get("median")
            if reference and twin and fast:
                out += ["", f"Whole training step of the seed CNN ({METRICS[metric][0]}): reference engine "
                            f"{reference:,.0f} images/s, the fast plan on NumPy twins {twin:,.0f}, on Numba kernels "
                            f"{fast:,.0f} ({fast / reference:.1f}x the reference engine)."]
                break
        out.append("")
    out += ["## Targets", "", "```"] + [f"{t['status']}  {t['target']}: {t['measured']}" for t in result["targets"]]
    out += ["```", ""]
    if result["meta"]["errors"]:
        out += ["## Errors", ""] + [f"- {e.splitlines()[0]}" for e in result["meta"]["errors"]] + [""]
    return "\n".join(out)


def versus_markdown(result):
    """The section comparing minicnn with the fastest peer cell by cell, and the first-call (compilation) table."""
    out = []
    ceiling = result.get("gemm_ceiling")
    rows = result.get("versus_peers") or []
    if ceiling:
        out += ["## The machine's float32 GEMM ceiling", "",
                f"NumPy's sgemm ({ceiling['size']} x {ceiling['size']} matrices, OpenBLAS with its default threads, "
                f"in minicnn's worker; one block per round): **{ceiling['gflops']:.0f} GFLOP/s**, the best call of "
                f"the run (median of the rounds' best calls: {ceiling['median_gflops']:.0f}, over "
                f"{ceiling['rounds_used']} of {ceiling['rounds']} rounds"
                f"{', not enough quiet ones' if ceiling['noisy'] else ', the quiet ones'}).", ""]
    if rows:
        peers = [k for k in result["meta"]["contenders"] if not k.startswith("minicnn")
                 and any(k in row["peers"] for row in rows)]
        out += ["## minicnn against the fastest peer", "",
                "minicnn = its fast engine (Numba kernels). Ratio = the median of per-round ratios to the peer with "
                "the best median in this cell (above 1 = minicnn faster; latency: the peer's time / minicnn's). "
                "GFLOP/s = images/s x the nominal FLOPs per image (2 x the multiply-adds of the convolutions and "
                "dense layers; training 3x that minus the first layer's input gradient; activations, pooling, "
                "normalisation and Adam not counted); share = that rate / the GEMM ceiling above, for minicnn and "
                f"for the fastest peer. Target (issue 18): >= {PEER_RATIO}x the fastest peer, or >= "
                f"{GEMM_SHARE:.0%} of the ceiling where that peer runs above {GEMM_BOUND:.0%} of it; latency at or "
                "below every peer's. Images/s, latency in ms; * = not enough quiet rounds.", "",
                "| model | metric | minicnn | " + " | ".join(CONTENDERS[k][0] for k in peers)
                + " | minicnn / fastest peer | minicnn GFLOP/s (share) | fastest peer's share | target |",
                "|---|---|---:|" + "---:|" * len(peers) + "---:|---:|---:|---|"]
        for row in rows:
            unit = METRICS[row["metric"]][1]
            cells = [fmt_value(row["peers"].get(k), unit) + ("" if k != row.get("fastest") else " (fastest)")
                     for k in peers]
            rate = "" if row.get("gflops") is None else (
                f"{row['gflops']:.1f}" + ("" if row.get("share") is None else f" ({row['share']:.0%})"))
            peer_share = "" if row.get("peer_share") is None else f"{row['peer_share']:.0%}"
            ratio = "—" if row.get("ratio") is None else f"{row['ratio']:.2f}x"
            out.append(f"| {MODEL_LABELS[row['model']]} | {row['metric']}{'*' if row['noisy'] else ''} | "
                       f"{fmt_value(row['value'], unit)} | " + " | ".join(cells)
                       + f" | {ratio} | {rate} | {peer_share} | {row['status']} |")
        failed = [row for row in rows if row["status"] == "FAIL"]
        out += ["", f"{len(rows) - len(failed) - sum(r['status'] == 'SKIP' for r in rows)} of {len(rows)} cells meet "
                    "the target" + (": missed in " + ", ".join(f"{MODEL_LABELS[r['model']]} {r['metric']}"
                                                                for r in failed) if failed else "") + ".", ""]
    first = result.get("first_calls") or {}
    if first:
        keys = [k for k in result["meta"]["contenders"] if any(k in per for per in first.values())]
        out += ["## First calls: compilation and tracing (s)", "",
                "The time of each contender's first call for a model, kind and batch size (building the step and "
                "calling it once): minicnn's Numba kernels (loaded from the JIT cache when warm), torch.compile's "
                "Inductor, jax.jit's XLA compilation, ONNX export + session creation, Keras's tracing. Never part "
                "of the measurements above. Cells: training b32 / b128 / inference b1000 / single image.", "",
                "| model | " + " | ".join(CONTENDERS[k][0] for k in keys) + " |", "|---|" + "---:|" * len(keys)]
        for model in result["meta"]["models"]:
            cells = []
            for key in keys:
                values = [first.get(f"{model}/{metric}", {}).get(key) for metric in METRICS]
                cells.append(" / ".join("—" if v is None else f"{v:.2f}" for v in values))
            out.append(f"| {MODEL_LABELS[model]} | " + " | ".join(cells) + " |")
        out.append("")
    return out


def chart(result, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    throughput = result["throughput"]
    models = list(throughput)
    keys = [k for k in result["meta"]["contenders"]]
    colors = {"minicnn": "#d62728", "minicnn-numpy": "#ff9896", "minicnn-reference": "#e377c2",
              "torch": "#1f77b4", "torch-cl": "#aec7e8",
              "keras-jax": "#2ca02c", "keras-tf": "#98df8a", "torch-compile": "#17becf", "jax": "#9467bd",
              "ort": "#8c564b"}
    if not models:
        fig, ax = plt.subplots(figsize=(6, 2))
        ax.text(0.5, 0.5, "no throughput measured", ha="center", va="center")
        ax.axis("off")
        fig.savefig(path, dpi=80)
        plt.close(fig)
        return
    metrics = list(METRICS)
    fig, axes = plt.subplots(len(models), len(metrics), figsize=(3.3 * len(metrics), 0.45 * len(keys) * len(models)
                                                                  + 1.4), squeeze=False)
    for row, model in enumerate(models):
        for col, metric in enumerate(metrics):
            ax = axes[row][col]
            entries = throughput[model].get(metric, {})
            shown = [k for k in keys if entries.get(k, {}).get("median")]
            has_reference = REFERENCE in entries
            values = []
            for k in shown:
                if has_reference:
                    values.append(entries[k].get(f"ratio_vs_{REFERENCE}") or (1.0 if k == REFERENCE else 0.0))
                else:
                    values.append(entries[k]["median"])
            positions = range(len(shown))
            ax.barh(list(positions), values, color=[colors.get(k, "grey") for k in shown])
            ax.set_yticks(list(positions))
            ax.set_yticklabels([CONTENDERS[k][0] for k in shown] if col == 0 else [], fontsize=7)
            ax.invert_yaxis()
            if values and min(v for v in values if v > 0) > 0 and max(values) / max(min(v for v in values if v > 0),
                                                                                 1e-9) > 20:
                ax.set_xscale("log")
            if has_reference:
                ax.axvline(1.0, color="black", linewidth=0.8)
            for position, value in zip(positions, values):
                label = f" {value:.2f}x" if has_reference else (f" {value:.2f}" if value < 10 else f" {value:,.0f}")
                ax.text(value, position, label, va="center", fontsize=7)
            noisy = result.get("rounds_used", {}).get(model, {}).get(metric, {}).get("noisy")
            ax.set_title(f"{MODEL_LABELS[model]}: {METRICS[metric][0]}{' (noisy*)' if noisy else ''}", fontsize=8)
            ax.tick_params(axis="x", labelsize=7)
            ax.set_xlim(right=max(values + [1.0]) * (3 if ax.get_xscale() == "log" else 1.3))
    env = result["environment"]
    what = "speed relative to PyTorch eager NCHW (higher = faster)" if REFERENCE in result["meta"]["contenders"] \
        else "median throughput (images/s) or latency (ms)"
    noisy = any(info.get("noisy") for per_model in result.get("rounds_used", {}).values()
                for info in per_model.values())
    note = (f"\n* noisy: fewer than {MIN_QUIET_BLOCKS} rounds in which other processes left the CPUs alone; "
            "all rounds used") if noisy else ""
    fig.suptitle(f"minicnn benchmark, {what}\n{env['cpu']}, {env['date']}{note}", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


# ---------------------------------------------------------------- main
def main(argv=None):
    args = parse_args(argv)
    started = time.perf_counter()
    os.makedirs(args.out, exist_ok=True)
    phases = {}
    mark = [time.perf_counter()]

    def phase(name):
        now = time.perf_counter()
        phases[name] = round(now - mark[0], 1)
        mark[0] = now

    env = worker_environment(args)
    environment_info = environment(env, [setting.split("=", 1)[0] for setting in args.env])
    tmp_root = tempfile.mkdtemp(prefix="minicnn-bench-")
    bench = Bench(args)
    skipped = []
    left_out = [CONTENDERS[key][0] for key in CONTENDERS if key not in args.contenders]
    if left_out:
        why = "--quick" if args.quick and not args.only else "--only"
        skipped.append(f"contenders {'; '.join(left_out)} ({why})")
    left_out = [CONTENDERS[key][0] for key in args.contenders if key not in args.side_contenders]
    if left_out:
        unable = [CONTENDERS[key][0] for key in args.contenders if key not in SIDE_CAPABLE]
        why = "--quick" if not unable else "not part of the one-process tests" if len(unable) == len(left_out) \
            else "--quick, or not part of the one-process tests"
        skipped.append(f"fresh-process start-up and peak memory of {'; '.join(left_out)} ({why})")
    left_out = [MODEL_LABELS[m] for m in common.MODELS if m not in args.models]
    if left_out:
        why = "--quick" if args.quick and not args.explicit_models else "--models"
        skipped.append(f"models {', '.join(left_out)} ({why})")
    fresh, memory, ladder = {}, {}, None

    quiet = None
    if args.wait_quiet > 0:
        waited, reached, load = wait_until_quiet(min(60.0, args.wait_quiet), lambda message: log(args, message))
        bench.waited += waited
        quiet = {"waited_s": round(waited, 1), "quiet": reached, "other_cores": load}
        phase("wait for quiet")
        # date and load average of the measurements, not of the wait
        environment_info = environment(env, [setting.split("=", 1)[0] for setting in args.env])
    try:
        log(args, f"minicnn benchmark ({args.mode}): contenders {', '.join(args.contenders)}; models "
                  f"{', '.join(args.models)}; {args.rounds} rounds of {args.budget} s")
        bench.start_workers(env, tmp_root)
        phase("start workers")
        if bench.workers:
            log(args, "warming up (JIT compilation, tracing; not measured)")
            bench.warm_up()
            phase("warm-up")
            log(args, "measuring")
            bench.measure_rounds()
            phase("rounds")
        if args.no_ladder:
            skipped.append("the naive-loops ladder (--no-ladder)")
        else:
            ladder = bench.ladder()
            phase("ladder")
        if args.fresh_rounds > 0:
            paths = bench.save_models(tmp_root)
            bench.stop()  # the long-lived workers are done: nothing else runs during start-up measurements
            fresh = fresh_process(bench, paths, env, args.fresh_rounds, tmp_root)
            phase("fresh process")
        else:
            skipped.append("fresh-process start-up (--fresh-rounds 0)")
        bench.stop()
        if args.no_memory:
            skipped.append("peak memory (--no-memory)")
        else:
            memory = peak_memory(bench, env, args.models, MEMORY_STEPS[args.mode])
            phase("memory")
    finally:
        bench.stop()
        shutil.rmtree(tmp_root, ignore_errors=True)

    environment_info["load_average_end"] = list(os.getloadavg()) if hasattr(os, "getloadavg") else None
    summary, rounds_used = summarize(bench.samples, bench.block_loads)
    percent = 100.0 * bench.idle_cpu / bench.busy_wall if bench.busy_wall else 0.0
    result = {
        "meta": {"mode": args.mode, "command": " ".join(["python", "benchmarks/run.py"] + list(argv or sys.argv[1:])),
                 "rounds": args.rounds, "budget": args.budget, "steps": args.steps, "gap": args.gap,
                 "models": args.models, "reference": REFERENCE,
                 "contenders": {key: {"label": CONTENDERS[key][0],
                                      "info": bench.workers[key].info if key in bench.workers else None}
                                for key in args.contenders if key not in bench.unavailable},
                 "unavailable": bench.unavailable, "skipped": skipped, "errors": bench.errors,
                 "idle_workers_cpu": None if bench.idle_cpu_unknown else
                 {"cpu_s": bench.idle_cpu, "busy_wall_s": bench.busy_wall, "percent": percent},
                 "other_processes": None if bench.foreign_unknown or not bench.busy_wall else
                 {"cores": bench.foreign_cpu / bench.busy_wall, "per_round_cores": bench.round_foreign},
                 "wait_quiet": quiet, "waited_s": round(bench.waited, 1), "quiet_cores": QUIET_CORES,
                 "min_quiet_rounds": MIN_QUIET_BLOCKS,
                 "phases_s": phases, "duration_s": time.perf_counter() - started},
        "environment": environment_info,
        "throughput": summary,
        "rounds_used": rounds_used,
        "fresh_process": fresh,
        "memory": memory,
        "ladder": ladder,
        "first_calls": {f"{model}/{metric}": values for (model, metric), values in bench.first_calls.items()},
        "gemm_ceiling": gemm_ceiling(bench.gemm),
    }
    result["versus_peers"] = versus_peers(bench.samples, rounds_used, summary, result["gemm_ceiling"])
    result["targets"] = targets(summary, fresh, memory)
    result["meta"]["duration_s"] = time.perf_counter() - started
    text = markdown(result)
    with open(os.path.join(args.out, "results.md"), "w") as file:
        file.write(text)
    with open(os.path.join(args.out, "results.json"), "w") as file:
        json.dump(result, file, indent=1, default=str)
        file.write("\n")
    chart(result, os.path.join(args.out, "results.png"))
    print(text if not args.quiet else "\n".join(f"{t['status']}  {t['target']}: {t['measured']}"
                                                 for t in result["targets"]))
    print(f"results written to {os.path.relpath(args.out)}/results.md, results.json, results.png "
          f"({result['meta']['duration_s']:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
