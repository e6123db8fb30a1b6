"""The benchmark's networks (benchmarks/common.py SPECS, built in PyTorch, Keras and pure JAX) are minicnn's own
ready-made architectures: the same layers, shapes and parameter counts; and the nominal FLOP counts the
benchmark reports per image."""
import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

import minicnn

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import common  # noqa: E402


def spec_parameters(name):
    """Trainable parameters and BatchNormalization's moving statistics, from the spec."""
    count = 0
    for layer, shape_in, shape_out in common.shapes(name):
        if layer["type"] == "conv":
            count += layer["kernel"] ** 2 * shape_in[2] * layer["filters"] + layer["filters"]
        elif layer["type"] == "dense":
            count += shape_in[0] * layer["units"] + layer["units"]
        elif layer["type"] == "batchnorm":
            count += 4 * shape_in[-1]
    return count


@pytest.mark.parametrize("name", common.MODELS)
def test_specs_are_minicnns_architectures(name):
    model = getattr(minicnn, common.MINICNN_BUILDERS[name])()
    assert model.count_params() == spec_parameters(name)
    assert tuple(model.output_shape) == (10,)
    kinds = {"Conv2D": "conv", "Dense": "dense", "MaxPool2D": "pool", "Flatten": "flatten",
             "BatchNormalization": "batchnorm", "Dropout": "dropout"}
    layers = [kinds[type(layer).__name__] for layer in model.layers if type(layer).__name__ in kinds]
    assert layers == [layer["type"] for layer in common.SPECS[name]]


def test_nominal_flops():
    # the seed CNN: convolutions 26*26*64*9 + 11*11*64*64*9 (the pool reads 10x10 of it; nominal counts all)
    # + 3*3*64*64*9, dense 64*64 + 64*32 + 32*10 multiply-adds
    macs = 26 * 26 * 64 * 9 + 11 * 11 * 64 * 64 * 9 + 3 * 3 * 64 * 64 * 9 + 64 * 64 + 64 * 32 + 32 * 10
    flops = common.nominal_flops("seed")
    assert flops["forward"] == 2 * macs
    assert flops["train"] == 3 * 2 * macs - 2 * 26 * 26 * 64 * 9  # no input gradient for the first layer
    assert common.nominal_flops("mlp")["forward"] == 2 * (784 * 256 + 256 * 128 + 128 * 10)


@pytest.mark.skipif(importlib.util.find_spec("torch") is None, reason="PyTorch not installed")
@pytest.mark.parametrize("name", common.MODELS)
def test_the_pytorch_networks_match(name):
    import torch

    network = common.torch_model(name)
    trainable = sum(p.numel() for p in network.parameters())
    statistics = sum(b.numel() for n, b in network.named_buffers() if "running" in n)
    assert trainable + statistics == spec_parameters(name)
    assert network(torch.zeros((2, 1, 28, 28))).shape == (2, 10)
    if name == "report004":
        assert len(network.l2_penalties) == 2
    assert np.isfinite(common.torch_loss(network, network(torch.ones((2, 1, 28, 28))),
                                         torch.tensor([1, 2])).item())


@pytest.mark.skipif(importlib.util.find_spec("jax") is None, reason="JAX not installed")
@pytest.mark.parametrize("name", ["mlp", "report003", "lenet5"])
def test_the_pure_jax_worker_trains_and_predicts(name):
    sys.path.insert(0, str(Path(common.__file__).parent / "workers"))
    from jax_worker import JaxBackend

    backend = JaxBackend()
    step = backend.train_step(name, 8)
    before = np.asarray(backend.model_state(name)[0][-1]["w"]).copy()
    step(), step()
    assert not np.allclose(np.asarray(backend.model_state(name)[0][-1]["w"]), before)  # Adam moved the weights
    probabilities = backend.predictor(name, 3)()
    assert probabilities.shape == (3, 10) and np.allclose(probabilities.sum(axis=1), 1, atol=1e-5)


@pytest.mark.skipif(importlib.util.find_spec("onnxruntime") is None or importlib.util.find_spec("torch") is None,
                    reason="ONNX Runtime or PyTorch not installed")
def test_the_onnx_runtime_worker_predicts_what_pytorch_predicts():
    import torch

    sys.path.insert(0, str(Path(common.__file__).parent / "workers"))
    from ort_worker import OrtBackend

    backend = OrtBackend()
    probabilities = backend.predictor("lenet5", 4)()
    torch.manual_seed(common.SEED)  # (the worker's network: built right after this seed)
    network = torch.nn.Sequential(common.torch_model("lenet5"), torch.nn.Softmax(dim=1)).eval()
    x = common.random_batches(4, count=1)[0][0].transpose(0, 3, 1, 2).copy()
    np.testing.assert_allclose(probabilities, network(torch.from_numpy(x)).detach().numpy(), atol=1e-5)


def test_the_header_warns_when_openblas_is_held_below_the_cpu():
    """OPENBLAS_CORETYPE naming AVX2 kernels on an AVX-512 CPU halves OpenBLAS's sgemm: the header says so."""
    import run

    has_avx512 = "avx512f" in Path("/proc/cpuinfo").read_text().split() if Path("/proc/cpuinfo").exists() else False
    assert run.openblas_held_back(None) is None
    assert run.openblas_held_back("SkylakeX") is None
    warning = run.openblas_held_back("Haswell")
    assert (warning is not None) == has_avx512
    if warning:
        assert "OPENBLAS_CORETYPE=Haswell" in warning and "Unset it" in warning
