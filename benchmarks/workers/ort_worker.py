"""Benchmark worker for ONNX Runtime (inference only).

    python benchmarks/workers/ort_worker.py

The PyTorch model (common.torch_model, evaluation mode, followed by softmax) is exported to ONNX (opset 17, the
TorchScript exporter, a dynamic batch axis) and run by an ``onnxruntime.InferenceSession`` on the CPU execution
provider with every graph optimisation (ORT_ENABLE_ALL: constant folding, Conv+ReLU fusion, NCHWc layouts),
intra-op threads 2, inter-op 1. The input is a prepared NCHW float32 array; the answer a NumPy array. Export and
session creation happen at the first call of each batch size (reported as first_call_s). ONNX Runtime does not
train: the training metrics are left out (``metrics`` in the worker's info).
"""
from __future__ import annotations

import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import common  # noqa: E402


class OrtBackend:
    metrics = ("infer1000", "latency1")

    def __init__(self):
        import onnxruntime
        import torch

        torch.set_num_threads(1)  # torch only exports here
        torch.manual_seed(common.SEED)
        self.ort, self.torch = onnxruntime, torch
        self.sessions = {}
        self.folder = tempfile.mkdtemp(prefix="minicnn-bench-ort-")

    def info(self):
        import numpy as np
        import onnx

        return {"versions": {"onnxruntime": self.ort.__version__, "onnx": onnx.__version__,
                             "torch": self.torch.__version__, "numpy": np.__version__},
                "threads": {"intra_op_num_threads": common.THREADS, "inter_op_num_threads": 1},
                "providers": self.ort.get_available_providers(), "metrics": list(self.metrics),
                "blas": common.blas_info(), "pid": os.getpid()}

    def session(self, model):
        if model in self.sessions:
            return self.sessions[model]
        torch = self.torch
        network = torch.nn.Sequential(common.torch_model(model), torch.nn.Softmax(dim=1)).eval()
        path = os.path.join(self.folder, f"{model}.onnx")
        example = torch.zeros((2, common.INPUT_SHAPE[2], *common.INPUT_SHAPE[:2]))
        torch.onnx.export(network, (example,), path, input_names=["x"], output_names=["probabilities"],
                          dynamic_axes={"x": {0: "batch"}, "probabilities": {0: "batch"}}, opset_version=17,
                          dynamo=False)
        options = self.ort.SessionOptions()
        options.intra_op_num_threads = common.THREADS
        options.inter_op_num_threads = 1
        options.graph_optimization_level = self.ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.sessions[model] = self.ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
        return self.sessions[model]

    def train_step(self, model, batch):
        raise NotImplementedError("ONNX Runtime is measured for inference only")

    def predictor(self, model, batch):
        import numpy as np

        session = self.session(model)
        x = np.ascontiguousarray(common.random_batches(batch, count=1)[0][0].transpose(0, 3, 1, 2))
        return lambda: session.run(None, {"x": x})[0]

    def save(self, model, path):
        raise NotImplementedError("the ONNX Runtime worker takes no part in the start-up and memory tests")


def main():
    common.serve(lambda: common.make_handlers(OrtBackend()))


if __name__ == "__main__":
    main()
