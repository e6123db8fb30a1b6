"""Benchmark worker for PyTorch eager mode (the reference all ratios are taken against).

    python benchmarks/workers/torch_worker.py --layout nchw|channels_last

A plain training loop, as the PyTorch tutorials write it: zero_grad, forward, F.cross_entropy, backward,
torch.optim.Adam(lr=1e-3) with its defaults. Prediction runs under torch.inference_mode() and applies softmax
(minicnn's and Keras's predict return probabilities too). Threads: torch.set_num_threads(2) (intra-op, OpenMP),
one inter-op thread.
"""
from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import common  # noqa: E402


class TorchBackend:
    def __init__(self, layout):
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
        torch.manual_seed(common.SEED)

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
                "layout": self.layout, "blas": common.blas_info(), "pid": os.getpid()}

    def train_step(self, model, batch):
        torch = self.torch
        network = self.build(model)
        network.train()
        self.trained.setdefault(model, network)
        optimizer = torch.optim.Adam(network.parameters(), lr=1e-3)
        loss_fn = torch.nn.functional.cross_entropy
        batches = [(self.tensor(x), torch.from_numpy(y)) for x, y in common.random_batches(batch)]

        def train_on(x, y):
            optimizer.zero_grad(set_to_none=True)
            loss = loss_fn(network(x), y)
            loss.backward()
            optimizer.step()

        return common.cycling_step(batches, train_on)

    def predictor(self, model, batch):
        torch = self.torch
        network = self.trained.get(model) or self.build(model)
        x = self.tensor(common.random_batches(batch, count=1)[0][0])

        def predict():
            with torch.inference_mode():
                return torch.softmax(network(x), dim=1)

        return predict

    def save(self, model, path):
        network = self.trained.get(model) or self.build(model)
        self.torch.save(network.state_dict(), path)
        return path


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--layout", choices=("nchw", "channels_last"), default="nchw")
    args = parser.parse_args()
    common.serve(lambda: common.make_handlers(TorchBackend(args.layout)))


if __name__ == "__main__":
    main()
