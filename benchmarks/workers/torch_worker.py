"""Benchmark worker for PyTorch: eager mode (the reference all ratios are taken against) or torch.compile.

    python benchmarks/workers/torch_worker.py --layout nchw|channels_last [--compile]

A plain training loop, as the PyTorch tutorials write it: zero_grad, forward, F.cross_entropy, backward,
torch.optim.Adam(lr=1e-3) with its defaults. Prediction runs under torch.inference_mode() and applies softmax
(minicnn's and Keras's predict return probabilities too). Threads: torch.set_num_threads(2) (intra-op, OpenMP),
one inter-op thread.

--compile: the forward pass and the loss go through ``torch.compile(..., dynamic=False)`` (TorchInductor's C++/OpenMP
code; one graph per batch size, as minicnn's and JAX's are specialised), the optimizer step stays eager (Adam's
multi-tensor path); prediction runs the compiled forward + softmax. The compilation happens at the first call of
each (kind, batch size): the benchmark reports it as that call's time (first_call_s), never in a measurement.
"""
from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import common  # noqa: E402


class TorchBackend:
    def __init__(self, layout, compile_=False):
        import torch

        torch.set_num_threads(common.THREADS)
        try:
            torch.set_num_interop_threads(1)
        except RuntimeError:
            pass
        self.torch = torch
        self.layout = layout
        self.memory_format = torch.channels_last if layout == "channels_last" else torch.contiguous_format
        self.trained = {}
        self.compile = compile_
        torch.manual_seed(common.SEED)

    def compiled(self, function):
        return self.torch.compile(function, dynamic=False) if self.compile else function

    def build(self, model):
        network = common.torch_model(model)
        if self.layout == "channels_last":
            network = network.to(memory_format=self.torch.channels_last)
        return network

    def tensor(self, x_nhwc):
        """NHWC float32 numpy -> NCHW tensor in this worker's memory format."""
        x = self.torch.from_numpy(x_nhwc).permute(0, 3, 1, 2)
        return x.contiguous(memory_format=self.memory_format)

    def info(self):
        torch = self.torch
        import re

        found = re.search(r"BLAS_INFO=(\w+)", torch.__config__.show())
        blas = found.group(1) if found else "?"
        try:
            capability = torch.backends.cpu.get_cpu_capability()
        except AttributeError:
            capability = "?"
        return {"versions": {"torch": torch.__version__},
                "threads": {"torch.get_num_threads()": torch.get_num_threads(),
                            "torch.get_num_interop_threads()": torch.get_num_interop_threads()},
                "torch_blas": blas, "cpu_capability": capability, "mkldnn": bool(torch.backends.mkldnn.is_available()),
                "layout": self.layout, "compiled": self.compile, "blas": common.blas_info(), "pid": os.getpid()}

    def train_step(self, model, batch):
        torch = self.torch
        network = self.build(model)
        network.train()
        self.trained.setdefault(model, network)
        optimizer = torch.optim.Adam(network.parameters(), lr=1e-3)
        batches = [(self.tensor(x), torch.from_numpy(y)) for x, y in common.random_batches(batch)]
        loss_of = self.compiled(lambda x, y: common.torch_loss(network, network(x), y))

        def train_on(x, y):
            if not network.training:  # a prediction in between set evaluation mode (BatchNorm, Dropout)
                network.train()
            optimizer.zero_grad(set_to_none=True)
            loss = loss_of(x, y)
            loss.backward()
            optimizer.step()

        return common.cycling_step(batches, train_on)

    def predictor(self, model, batch):
        torch = self.torch
        network = self.trained.get(model) or self.build(model)
        x = self.tensor(common.random_batches(batch, count=1)[0][0])
        forward = self.compiled(lambda x: torch.softmax(network(x), dim=1))

        def predict():
            if network.training:
                network.eval()
            with torch.inference_mode():
                return forward(x)

        return predict

    def save(self, model, path):
        network = self.trained.get(model) or self.build(model)
        self.torch.save(network.state_dict(), path)
        return path


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--layout", choices=("nchw", "channels_last"), default="nchw")
    parser.add_argument("--compile", action="store_true", help="torch.compile the forward pass and the loss")
    args = parser.parse_args()
    common.serve(lambda: common.make_handlers(TorchBackend(args.layout, args.compile)))


if __name__ == "__main__":
    main()
