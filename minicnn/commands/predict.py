"""``minicnn predict IMAGE...``: the three most likely digits for each of your images (drawn or photographed)."""
from __future__ import annotations

HELP = "predict the digit in your own images (PNG, JPEG, ...; dark or light ink): top 3 per image"


def add_arguments(parser):
    parser.add_argument("images", nargs="+", metavar="IMAGE", help="image files (PNG, JPEG, ...)")
    parser.add_argument("--model", default=None,
                        help="a model file, or the name of a model train.py saved in the models folder: default, "
                             "seed, lenet5, mlp (default: default, i.e. mnist-default.npz there, else "
                             "mnist-default-sample.npz)")
    parser.add_argument("--show", default=None, metavar="PNG",
                        help="save the 28x28 images the model actually sees to this PNG")


def resolve_model(choice):
    """--model: the name of a model train.py saved in the models folder ('default', 'seed', ...), or a file."""
    from pathlib import Path

    import minicnn
    from minicnn.paths import find_model

    if choice is None or choice in minicnn.ARCHITECTURES:
        return find_model("mnist", choice or "default")
    return Path(choice).absolute()


def describe_model(path, model):
    """'/home/me/.local/share/minicnn/models/mnist-default.npz (trained 2026-11-21 11:10 UTC on full MNIST ...)'."""
    import time
    from datetime import datetime
    from pathlib import Path

    record = getattr(model, "metadata", None) or {}
    if "trained_at" not in record:  # saved by model.save or an older train.py: only the file's time is known
        saved = time.strftime("%Y-%m-%d %H:%M", time.localtime(Path(path).stat().st_mtime))
        return f"{path} (saved {saved}; no training record in the file)"
    trained = datetime.fromisoformat(record["trained_at"]).strftime("%Y-%m-%d %H:%M UTC")
    images = f"{record['training_images']:,} images of " if record.get("training_images") else ""
    details = [f"trained {trained} on {images}{record.get('data', 'unknown data')}"]
    if record.get("training"):
        details.append(record["training"] + (", stopped by Ctrl+C" if record.get("interrupted") else ""))
    if record.get("test_accuracy") is not None:
        details.append(f"test accuracy {record['test_accuracy'] * 100:.2f}%")
    return f"{path} ({'; '.join(details)})"


def load_chosen_model(choice):
    """(path, model) for --model, or (None, error message) saying what is missing and how to get it."""
    import minicnn
    from minicnn.paths import models_dir

    path = resolve_model(choice)
    if not path.exists() and path.parent == models_dir():
        option = f" --model {choice}" if choice not in (None, "default") else ""
        return None, (f"no trained model {path.name} in {path.parent}: train one first with "
                      f"`python train.py{option}` (or pass --model FILE)")
    try:
        return path, minicnn.load_model(path)
    except minicnn.ModelFileError as error:
        return None, str(error)


def top3(row):
    """'7  (7: 98.1%, 1: 1.2%, 9: 0.3%)' for one row of probabilities."""
    import numpy as np

    best = np.argsort(row)[::-1][:3]
    return f"{best[0]}  ({', '.join(f'{digit}: {row[digit] * 100:.1f}%' for digit in best)})"


def run(arguments):
    import sys

    import numpy as np

    from minicnn.digits import ImageProblem, read_digit

    problem = unwritable_output(arguments.show)
    if problem:  # checked before loading and predicting, not after
        print(f"error: --show {arguments.show}: {problem}", file=sys.stderr)
        return 2
    path, model = load_chosen_model(arguments.model)
    if path is None:
        print(f"error: {model}", file=sys.stderr)
        return 2
    print(f"model: {describe_model(path, model)}")
    prepared, names, status = [], [], 0
    for image in arguments.images:
        try:
            prepared.append(read_digit(image))
            names.append(image)
        except ImageProblem as error:
            print(f"error: {error}", file=sys.stderr)
            status = 1
    if not prepared:
        return status or 1
    probabilities = model.predict(np.stack(prepared)[..., None])
    for name, row in zip(names, probabilities):
        print(f"{name}: {top3(row)}")
    if arguments.show:
        save_contact_sheet(arguments.show, prepared, probabilities)
        print(f"saved what the model sees to {arguments.show}")
    return status


def unwritable_output(path):
    """Why a file cannot be written at ``path`` (its folder is missing, not a folder, or not writable; or the path
    is a folder), or None. Nothing is created."""
    import os
    from pathlib import Path

    if path is None:
        return None
    path = Path(path).expanduser()
    folder = path.parent if str(path.parent) else Path(".")
    if path.is_dir():
        return "is a folder; give a file name (e.g. seen.png)"
    if not folder.exists():
        return f"the folder {folder} does not exist; create it first (mkdir -p {folder})"
    if not folder.is_dir():
        return f"{folder} is not a folder"
    if not os.access(folder, os.W_OK | os.X_OK) or (path.exists() and not os.access(path, os.W_OK)):
        return f"cannot write there (permission denied in {folder})"
    return None


def save_contact_sheet(path, images, probabilities):
    """A PNG of the 28x28 images, each titled with its predicted digit."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, len(images), figsize=(1.6 * len(images), 1.9), squeeze=False)
    for axis, image, row in zip(axes[0], images, probabilities):
        axis.imshow(image, cmap="gray")
        axis.set_title(str(int(row.argmax())))
        axis.axis("off")
    figure.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(figure)
