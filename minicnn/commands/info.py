"""``minicnn info``: versions, the engines, the CPU and BLAS, and where data and models are looked for."""
from __future__ import annotations

HELP = "show versions, engines, CPU/BLAS and where minicnn looks for data and models"


def add_arguments(parser):
    parser.add_argument("--model", metavar="FILE", help="also show this saved model's summary and fast-engine plan")


def run(arguments):
    import os
    import platform

    import numpy as np

    import minicnn
    from minicnn import paths

    print(f"minicnn {minicnn.__version__}, numpy {np.__version__}, Python {platform.python_version()}")
    print(f"engines: {', '.join(sorted(minicnn.ENGINES))} (default: {os.environ.get('MINICNN_ENGINE') or 'fast'})")
    print(f"models folder: {paths.models_dir()}")
    try:
        from threadpoolctl import threadpool_info
        for library in threadpool_info():
            print(f"BLAS: {library.get('internal_api')} {library.get('version')} "
                  f"({library.get('architecture')}, {library.get('num_threads')} threads)")
    except ImportError:
        pass
    if arguments.model:
        model = minicnn.load_model(arguments.model)
        model.summary()
    return 0
