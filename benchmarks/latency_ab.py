"""A/B of one-image (or few-image) prediction latency: two minicnn source trees, interleaved, medians.

    python benchmarks/latency_ab.py BEFORE_TREE AFTER_TREE [--models seed,mlp] [--rounds 15] [--images 1]

Each tree runs in its own long-lived worker process (PYTHONPATH=tree, MINICNN_COLD_START=0, models warmed up);
the driver asks the two workers in turn, in alternating order, for one burst of ``--calls`` predictions per
model, ``--rounds`` times. Per burst: the median wall time and the median CPU time (time.process_time) of one
call. Reported: the median over the rounds of each, and the median of the per-round ratios before / after (a
loaded machine slows both workers in the same round, so the ratio is steadier than either time).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys

WORKER = r"""
import json, sys, time
import minicnn
print(minicnn.__file__, file=sys.stderr)
import numpy as np
from minicnn import architectures
models, images = sys.argv[1].split(","), int(sys.argv[2])
built = {name: architectures.ARCHITECTURES[name]().warm_up() for name in models}
x = np.random.default_rng(0).random((images, 28, 28, 1), dtype=np.float32)
for line in sys.stdin:
    calls = int(line)
    result = {}
    for name, model in built.items():
        walls, cpus = [], []
        for _ in range(calls):
            wall, cpu = time.perf_counter(), time.process_time()
            model.predict(x)
            cpus.append(time.process_time() - cpu)
            walls.append(time.perf_counter() - wall)
        result[name] = (float(np.median(walls)), float(np.median(cpus)))
    print(json.dumps(result), flush=True)
"""


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("before")
    parser.add_argument("after")
    parser.add_argument("--models", default="seed,default,lenet5,mlp,report003")
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--images", type=int, default=1)
    arguments = parser.parse_args()
    workers = {}
    for label, tree in (("before", arguments.before), ("after", arguments.after)):
        environment = dict(os.environ, PYTHONPATH=os.path.abspath(tree), MINICNN_COLD_START="0")
        workers[label] = subprocess.Popen([sys.executable, "-c", WORKER, arguments.models, str(arguments.images)],
                                          stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=environment,
                                          cwd=os.path.abspath(tree))  # ("-c" puts the working directory first)
    results = {"before": [], "after": []}
    load = os.getloadavg()[0]
    for number in range(arguments.rounds):
        for label in (("before", "after") if number % 2 == 0 else ("after", "before")):
            workers[label].stdin.write(f"{arguments.calls}\n")
            workers[label].stdin.flush()
            results[label].append(json.loads(workers[label].stdout.readline()))
    for worker in workers.values():
        worker.stdin.close()
        worker.wait()
    print(f"{arguments.images} image(s), {arguments.rounds} interleaved rounds of {arguments.calls} calls; load average "
          f"{load:.1f} at the start, {os.getloadavg()[0]:.1f} at the end")
    print(f"{'model':<10} {'before us':>10} {'after us':>9} {'before cpu':>11} {'after cpu':>10} {'ratio':>6} "
          f"{'cpu ratio':>9}")
    for name in arguments.models.split(","):
        before = [r[name] for r in results["before"]]
        after = [r[name] for r in results["after"]]
        ratio = statistics.median(b[0] / a[0] for b, a in zip(before, after))
        cpu_ratio = statistics.median(b[1] / a[1] for b, a in zip(before, after) if a[1] > 0)
        print(f"{name:<10} {statistics.median(b[0] for b in before) * 1e6:>10.1f} "
              f"{statistics.median(a[0] for a in after) * 1e6:>9.1f} "
              f"{statistics.median(b[1] for b in before) * 1e6:>11.1f} "
              f"{statistics.median(a[1] for a in after) * 1e6:>10.1f} {ratio:>5.2f}x {cpu_ratio:>8.2f}x")


if __name__ == "__main__":
    main()
