"""The tiered start (minicnn/fast/startup.py, minicnn/kernels/jit.py): ``import minicnn`` does not import Numba, the
first small prediction of a process runs on the NumPy twins without importing it, everything after that runs on
the Numba kernels, and all of them give the same numbers.

Each test runs a fresh interpreter (what is imported is a property of the whole process) with its own Numba
cache directory, shared by this module's tests so the kernels are compiled once. No test looks at a time.
"""
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import minicnn

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def numba_cache(tmp_path_factory):
    return tmp_path_factory.mktemp("numba-cache")


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("model") / "seed.npz"
    minicnn.seed_cnn(seed=5).save(path)
    return path


def run_fresh(code, numba_cache, **environment):
    """Run ``code`` in a new interpreter (minicnn settings cleared, then ``environment`` set); returns the JSON
    object the code printed on its last line of output."""
    env = {key: value for key, value in os.environ.items()
           if not key.startswith("MINICNN_") and key not in ("NUMBA_DISABLE_JIT", "NUMBA_CACHE_DIR")}
    env.update(NUMBA_CACHE_DIR=str(numba_cache), PYTHONPATH=str(ROOT), **environment)
    completed = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                               env=env, cwd=ROOT, timeout=600)
    assert completed.returncode == 0, completed.stdout[-2000:] + completed.stderr[-4000:]
    return json.loads(completed.stdout.strip().splitlines()[-1])


PREAMBLE = """
    import json, sys
    import numpy as np
    import minicnn
    from minicnn.kernels import jit

    def images(count):
        return np.random.default_rng(count).random((count, 28, 28, 1), dtype=np.float32)

    def numba_imported():
        return "numba" in sys.modules
"""


def test_importing_minicnn_imports_neither_numba_nor_tqdm(numba_cache):
    result = run_fresh(PREAMBLE + """
    print(json.dumps({"numba": numba_imported(), "loaded": jit.numba_loaded(), "tqdm": "tqdm" in sys.modules,
                      "scipy": "scipy" in sys.modules, "engine": minicnn.seed_cnn().engine}))
    """, numba_cache)
    assert result == {"numba": False, "loaded": False, "tqdm": False, "scipy": False, "engine": "fast"}


def test_first_one_image_predict_runs_on_the_twins_and_the_second_on_numba(numba_cache, model_file):
    result = run_fresh(PREAMBLE + f"""
    model = minicnn.load_model({str(model_file)!r})
    first = model.predict(images(1))
    after_first = numba_imported()
    second = model.predict(images(1))
    after_second, loaded = numba_imported(), jit.numba_loaded()
    third = model.predict(images(1))
    from minicnn.kernels import fused
    print(json.dumps({{"after_first": after_first, "after_second": after_second, "loaded": loaded,
                      "numba_ran": len(fused.conv_epilogue_forward_into_numba.signatures) > 0,
                      "first": first.tolist(), "second": second.tolist(), "third": third.tolist()}}))
    """, numba_cache)
    assert result["after_first"] is False  # the first prediction (one image) did not import Numba ...
    assert result["after_second"] is True and result["loaded"] is True  # ... the second did, and ran on it
    assert result["numba_ran"] is True
    np.testing.assert_allclose(result["first"], result["second"], rtol=0, atol=1e-5)  # twins == kernels
    assert result["second"] == result["third"]
    expected = minicnn.load_model(model_file).predict(np.random.default_rng(1).random((1, 28, 28, 1),
                                                                                       dtype=np.float32))
    np.testing.assert_allclose(result["first"], expected, rtol=0, atol=1e-5)  # and what this process computes


def test_first_predict_of_a_large_batch_uses_numba(numba_cache, model_file):
    result = run_fresh(PREAMBLE + f"""
    model = minicnn.load_model({str(model_file)!r})
    model.predict(images(64))
    print(json.dumps({{"numba": numba_imported(), "loaded": jit.numba_loaded()}}))
    """, numba_cache)
    assert result == {"numba": True, "loaded": True}


def test_cold_start_can_be_turned_off(numba_cache, model_file):
    result = run_fresh(PREAMBLE + f"""
    model = minicnn.load_model({str(model_file)!r})
    model.predict(images(1))
    print(json.dumps({{"numba": numba_imported()}}))
    """, numba_cache, MINICNN_COLD_START="0")
    assert result == {"numba": True}


@pytest.mark.parametrize("engine", ["reference", "twins"])
def test_the_numpy_engines_never_import_numba(numba_cache, model_file, engine):
    result = run_fresh(PREAMBLE + f"""
    model = minicnn.load_model({str(model_file)!r})
    for count in (1, 1, 64):
        model.predict(images(count))
    model.compile(optimizer=minicnn.optimizers.Adam(1e-3))
    model.train_step(images(8), np.arange(8) % 10)
    model.warm_up()  # (loads nothing for these engines)
    print(json.dumps({{"numba": numba_imported(), "engine": model.engine}}))
    """, numba_cache, MINICNN_ENGINE=engine)
    assert result == {"numba": False, "engine": engine}


def test_warm_up_loads_numba_and_every_kernel(numba_cache, model_file):
    result = run_fresh(PREAMBLE + f"""
    model = minicnn.load_model({str(model_file)!r})
    model.warm_up()
    loaded = numba_imported() and all(kernel.dispatcher is not None for kernel in jit._kernels)
    probabilities = model.predict(images(1))
    print(json.dumps({{"loaded": loaded, "kernels": len(jit._kernels), "sum": float(probabilities.sum())}}))
    """, numba_cache)
    assert result["loaded"] is True and result["kernels"] > 10
    assert result["sum"] == pytest.approx(1.0, abs=1e-5)


def test_only_the_first_small_call_of_a_process_is_a_cold_start(numba_cache):
    result = run_fresh(PREAMBLE + """
    from minicnn.fast import startup
    seen = {"first": startup.claim_cold_start(1), "again": startup.claim_cold_start(1),
            "numba": numba_imported()}
    print(json.dumps(seen))
    """, numba_cache)
    assert result == {"first": True, "again": False, "numba": False}


def test_large_first_batch_is_not_a_cold_start(numba_cache):
    result = run_fresh(PREAMBLE + """
    from minicnn.fast import startup
    print(json.dumps({"cold": startup.claim_cold_start(startup.COLD_START_MAX_BATCH + 1)}))
    """, numba_cache)
    assert result == {"cold": False}


def test_lazy_kernel_exposes_py_func_and_loads_once_from_two_threads(numba_cache):
    result = run_fresh(PREAMBLE + """
    import threading
    from minicnn.kernels import relu
    from minicnn.kernels.jit import KernelTable

    kernel = relu.relu_forward_numba
    facts = {"name": kernel.__name__, "py_func": kernel.py_func.__name__, "loaded_before": jit.numba_loaded()}
    x = np.linspace(-1, 1, 101, dtype=np.float32).reshape(1, 101)
    barrier, outputs = threading.Barrier(2), [None, None]

    def call(slot):
        barrier.wait()  # both threads make the first call at the same moment
        outputs[slot] = kernel(x)

    threads = [threading.Thread(target=call, args=(slot,)) for slot in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    facts["same"] = all(np.array_equal(output, np.maximum(x, 0)) for output in outputs)
    facts["signatures"] = len(kernel.signatures)  # forwarded to Numba's dispatcher
    facts["picked"] = KernelTable("numba").relu_forward is kernel.dispatcher
    facts["numba_dispatcher"] = type(kernel.dispatcher).__module__.startswith("numba")
    facts["loaded_after"] = jit.numba_loaded()
    print(json.dumps(facts))
    """, numba_cache)
    assert result == {"name": "relu_forward_numba", "py_func": "relu_forward_numba", "loaded_before": False,
                      "same": True, "signatures": 1, "picked": True, "numba_dispatcher": True,
                      "loaded_after": True}


def test_a_kernel_can_call_a_helper_kernel_of_its_file(numba_cache):
    """winograd's two backward output kernels share _tile_dM_numba: calling a lazy kernel from a kernel works,
    and the module keeps the lazy object."""
    result = run_fresh(PREAMBLE + """
    from minicnn.kernels import winograd
    dy = np.arange(12, dtype=np.float32).reshape(1, 2, 2, 3)
    fast = winograd.output_transform_backward_into_numba(dy, 1, 1, np.zeros((16, 1, 3), np.float32))
    reference = winograd.output_transform_backward_into_numpy(dy, 1, 1, np.zeros((16, 1, 3), np.float32))
    print(json.dumps({"same": bool(np.array_equal(fast, reference)),
                      "helper_still_lazy": isinstance(winograd._tile_dM_numba, jit.LazyKernel)}))
    """, numba_cache)
    assert result == {"same": True, "helper_still_lazy": True}


def test_numba_disable_jit_still_works(numba_cache, model_file):
    result = run_fresh(PREAMBLE + f"""
    from minicnn.kernels import fused
    model = minicnn.load_model({str(model_file)!r})
    first = model.predict(images(2))   # a cold start: the NumPy twins
    second = model.predict(images(2))  # the "Numba" kernels, run as Python by NUMBA_DISABLE_JIT=1
    kernel = fused.conv_epilogue_forward_into_numba
    print(json.dumps({{"plain_python": kernel.dispatcher is kernel.py_func,
                      "close": bool(np.allclose(first, second, rtol=0, atol=1e-5))}}))
    """, numba_cache, NUMBA_DISABLE_JIT="1")
    assert result == {"plain_python": True, "close": True}
