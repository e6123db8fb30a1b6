"""report001 on the fast engine: training images/s at batch 32 and 128, inference images/s (batch 1000), and
optionally PyTorch eager on the same layers. One configuration per process; run it alternately for two versions
of minicnn (PYTHONPATH) to get interleaved A/B ratios on a shared machine:

    PYTHONPATH=/path/to/version python benchmarks/report001_ab.py [--torch] [--repeats 3]

Prints one JSON line. (benchmarks/run.py holds the maintained report001 section; this is the quick A/B tool.)
"""
import argparse
import json
import os
import time

import numpy as np


def best_rate(function, images, repeats, steps):
    function()  # warm-up (compilation, buffers)
    best = 0.0
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(steps):
            function()
        best = max(best, images * steps / (time.perf_counter() - start))
    return best


def minicnn_rates(repeats):
    import minicnn
    rng = np.random.default_rng(0)
    x = rng.random((1000, 28, 28, 1), dtype=np.float32)
    y = rng.integers(0, 10, 1000)
    model = minicnn.report001(engine="fast")
    model.compile(minicnn.optimizers.Adam(1e-3))
    rates = {}
    for batch, steps in ((32, 8), (128, 3)):
        rates[f"train_{batch}"] = best_rate(lambda: model.train_step(x[:batch], y[:batch]), batch, repeats, steps)
    rates["infer_1000"] = best_rate(lambda: model.predict(x, batch_size=1000), 1000, repeats, 1)
    return {"minicnn": os.path.dirname(minicnn.__file__), **rates}


def torch_rates(repeats):
    import torch
    from torch import nn
    torch.set_num_threads(2)

    def block(inputs, filters, convolutions, rate):
        layers = []
        for _ in range(convolutions):
            layers += [nn.Conv2d(inputs, filters, 3, padding=1), nn.ReLU(), nn.BatchNorm2d(filters, eps=1e-3,
                                                                                          momentum=0.01)]
            inputs = filters
        return layers + [nn.MaxPool2d(2), nn.Dropout(rate)]

    model = nn.Sequential(*block(1, 64, 2, 0.3), *block(64, 128, 2, 0.4), *block(128, 256, 1, 0.5), nn.Flatten(),
                          nn.Linear(2304, 512), nn.ReLU(), nn.Dropout(0.5), nn.Linear(512, 256), nn.ReLU(),
                          nn.Dropout(0.5), nn.Linear(256, 10))
    optimizer = torch.optim.Adam(model.parameters(), 1e-3)
    loss = nn.CrossEntropyLoss()
    x = torch.rand(1000, 1, 28, 28)
    y = torch.randint(0, 10, (1000,))

    def step(batch):
        model.train()
        optimizer.zero_grad()
        loss(model(x[:batch]), y[:batch]).backward()
        optimizer.step()

    def infer():
        model.eval()
        with torch.no_grad():
            model(x)

    rates = {f"train_{batch}": best_rate(lambda: step(batch), batch, repeats, steps)
             for batch, steps in ((32, 8), (128, 3))}
    rates["infer_1000"] = best_rate(infer, 1000, repeats, 1)
    return {"torch": torch.__version__, **rates}


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--torch", action="store_true")
    parser.add_argument("--repeats", type=int, default=3)
    arguments = parser.parse_args()
    result = torch_rates(arguments.repeats) if arguments.torch else minicnn_rates(arguments.repeats)
    print(json.dumps({**result, "load": os.getloadavg()[0]}))
