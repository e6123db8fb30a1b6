"""Smoke test of the benchmark harness (benchmarks/run.py) in its cheapest mode, minicnn only.

It checks that one command produces the Markdown table, the JSON file and the PNG chart with the expected
structure. It never looks at the speed numbers: timings on a shared machine prove nothing, and CI has no peers
(PyTorch, Keras) installed, so their targets must come out as SKIP.
"""
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
RUN = ROOT / "benchmarks" / "run.py"
METRICS = {"train32", "train128", "infer1000", "latency1"}


@pytest.mark.skipif(importlib.util.find_spec("matplotlib") is None, reason="the chart needs matplotlib")
def test_benchmark_harness_produces_table_json_and_chart(tmp_path):
    command = [sys.executable, str(RUN), "--quick", "--only", "minicnn", "--rounds", "1", "--steps", "2",
               "--budget", "0.05", "--ladder-batch", "1", "--out", str(tmp_path), "--quiet"]
    completed = subprocess.run(command, capture_output=True, text=True, timeout=180, cwd=ROOT)
    assert completed.returncode == 0, completed.stdout[-2000:] + completed.stderr[-3000:]

    markdown = (tmp_path / "results.md").read_text()
    data = json.loads((tmp_path / "results.json").read_text())
    png = (tmp_path / "results.png").read_bytes()

    assert png.startswith(b"\x89PNG") and len(png) < 200_000
    assert {"meta", "environment", "throughput", "fresh_process", "memory", "ladder", "targets"} <= set(data)
    assert data["meta"]["mode"] == "quick" and not data["meta"]["errors"], data["meta"]["errors"]
    assert {"date", "cpu", "python", "versions", "env"} <= set(data["environment"])

    seed = data["throughput"]["seed"]
    assert set(seed) == METRICS
    for metric in METRICS:
        for contender in ("minicnn", "minicnn-numpy", "minicnn-reference"):
            assert seed[metric][contender]["median"] > 0

    assert {"empty", "warm"} <= set(data["fresh_process"]["minicnn"])  # --quick: minicnn (Numba) only
    assert data["fresh_process"]["minicnn"]["warm"]["total_s"]["median"] > 0
    assert data["memory"]["seed"]["minicnn"]["peak_rss_mb"] > 0
    assert [row["layer"] for row in data["ladder"]] == ["conv1", "conv2", "conv3"]
    assert all(row["max_abs_diff"] < 1e-3 for row in data["ladder"])

    ceiling = data["gemm_ceiling"]  # the float32 GEMM ceiling, measured once per round
    assert ceiling["gflops"] > 0 and ceiling["rounds"] == 1
    versus = {row["metric"]: row for row in data["versus_peers"]}  # no peers here: every cell SKIP
    assert set(versus) == METRICS and all(row["status"] == "SKIP" for row in versus.values())
    assert versus["train32"]["gflops"] > 0 and versus["infer1000"]["share"] > 0
    assert set(data["first_calls"]) == {f"seed/{metric}" for metric in METRICS}

    statuses = {target["target"]: target["status"] for target in data["targets"]}
    assert len(statuses) == 9 and set(statuses.values()) <= {"PASS", "FAIL", "SKIP"}
    peer_targets = [name for name in statuses if "PyTorch" in name or "Keras" in name]
    assert len(peer_targets) == 6 and all(statuses[name] == "SKIP" for name in peer_targets)

    for heading in ("## Throughput and latency", "### seed CNN", "## Fresh process", "## Peak memory",
                    "## What each technique buys", "## Targets", "## The machine's float32 GEMM ceiling",
                    "## minicnn against the fastest peer", "## First calls"):
        assert heading in markdown
    for label in ("minicnn (fast engine, Numba kernels)", "minicnn (fast plan, NumPy twins)",
                  "minicnn (reference engine)"):
        assert label in markdown
