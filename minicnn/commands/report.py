"""``minicnn report MODEL.npz``: evaluate a saved model on the test set and write its evaluation report.

    minicnn report ~/.local/share/minicnn/models/mnist-default.npz    # -> reports/mnist-default/report.html
    minicnn report mnist-default                                      # the same: looked for in the models folder
    minicnn report fashion.npz --dataset fashion-mnist --out /tmp/fashion

The page, its PNGs and report.json are described in minicnn/report.py. The learning curves, training time and
data source come from what train.py saved in the model file. Progress goes to stderr, the page's path to stdout.

This command and ``minicnn train`` are the places in minicnn that load data with mnist_loader (the engine itself
never does: setup.cfg's "data-apart" contract lets these two commands import it).
"""
from __future__ import annotations

HELP = "evaluate a saved model on the test set and write an HTML report with plots (and report.json)"
EXIT_ERROR = 2


def add_arguments(parser):
    parser.add_argument("model", metavar="MODEL.npz",
                        help="a model saved by train.py or model.save(), or its name in the models folder "
                             "(e.g. mnist-default)")
    parser.add_argument("--dataset", choices=["mnist", "fashion-mnist"], default=None,
                        help="test set to evaluate on (default: the one the model file says it was trained on, "
                             "else mnist)")
    parser.add_argument("--out", metavar="DIR", default=None,
                        help="folder for report.html, report.json and the PNGs (default: reports/<model file "
                             "name without .npz>/ in the current folder)")
    parser.add_argument("--data-dir", metavar="DIR", default=None,
                        help="folder with the data set's IDX files (default: where train.py looks: $MINICNN_DATA, "
                             "the per-user cache, a download, then for MNIST the bundled sample)")
    parser.add_argument("--limit", type=int, default=None, metavar="N",
                        help="evaluate on the first N test images only (quick look; the report says so)")
    parser.add_argument("--engine", choices=["fast", "reference", "twins"], default=None,
                        help="engine to run the model on (default: $MINICNN_ENGINE, else the one it was saved with)")


def find_model_file(name):
    """The model file: the path as given, else <models folder>/<name>[.npz]."""
    from pathlib import Path

    from minicnn.paths import models_dir

    path = Path(name).expanduser()
    if path.exists():
        return path
    for candidate in (models_dir() / path.name, models_dir() / f"{path.name}.npz"):
        if path.parent == Path(".") and candidate.is_file():
            return candidate
    return path  # load_model says it does not exist and how to make it


def run(arguments):
    import sys
    import warnings
    from pathlib import Path

    import minicnn
    import mnist_loader
    from minicnn.report import write_report

    if arguments.limit is not None and arguments.limit < 1:
        print(f"error: --limit must be at least 1, got {arguments.limit}", file=sys.stderr)
        return EXIT_ERROR
    path = find_model_file(arguments.model)
    try:
        model = minicnn.load_model(path, engine=arguments.engine)
    except minicnn.ModelFileError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_ERROR
    metadata = model.metadata or {}
    trained_on = metadata.get("dataset")
    dataset = arguments.dataset or trained_on or "mnist"
    if trained_on and trained_on != dataset:
        print(f"warning: {path.name} was trained on {trained_on}, evaluating it on {dataset}", file=sys.stderr)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", mnist_loader.SampleDataWarning)
            data = mnist_loader.load_dataset(dataset, data_dir=arguments.data_dir, verbose=True,
                                             report_source=False)
    except mnist_loader.DatasetError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_ERROR
    for warning in caught:
        print(f"warning: {warning.message}", file=sys.stderr)
    print(f"data: {data.describe()}", file=sys.stderr)
    if tuple(model.input_shape) != (*data.x_test.shape[1:], 1) or model.num_classes != len(data.spec.class_names):
        print(f"error: {path.name} takes inputs {model.input_shape} with {model.num_classes} classes; "
              f"{data.spec.title} has {data.x_test.shape[1:]} images in {len(data.spec.class_names)} classes",
              file=sys.stderr)
        return EXIT_ERROR
    x_test = mnist_loader.to_float32(data.x_test, add_channel_axis=True)
    y_test = data.y_test
    if arguments.limit:
        x_test, y_test = x_test[:arguments.limit], y_test[:arguments.limit]
    out = Path(arguments.out) if arguments.out else Path("reports") / path.stem
    page = write_report(model, x_test, y_test, out, data=data, model_file=path.resolve(), verbose=True)
    print(page)
    return 0
