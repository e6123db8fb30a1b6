"""`python -m mnist_loader`: say where the data is and verify it; `--plot [PATH]` saves example images.

    python -m mnist_loader                        # MNIST, from the usual sources
    python -m mnist_loader --dataset fashion-mnist --data-dir ../shared/data
    python -m mnist_loader --plot mnist.png
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from .catalog import DATASETS, get_spec
from .checksums import verify_md5
from .datasets import SOURCE_DOWNLOAD, locate_files, read_checked_file
from .errors import DataNotFound, DatasetError
from .plotting import save_image_grid
from .sample import arrays_digest, load_sample


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point; returns the exit status (0 if the data is there and sound)."""
    parser = argparse.ArgumentParser(
        prog="python -m mnist_loader", description="Say where the MNIST data is and verify it."
    )
    parser.add_argument("--dataset", default="mnist", choices=sorted(DATASETS), help="data set (default: mnist)")
    parser.add_argument("--data-dir", help="directory holding the files or <dataset>/ "
                                           "(default: $MINICNN_DATA, the cache, a download)")
    parser.add_argument("--no-download", action="store_true", help="do not download missing files")
    parser.add_argument("--plot", nargs="?", const="", metavar="PATH",
                        help="save a grid of example images (default PATH: <dataset>-examples.png)")
    args = parser.parse_args(argv)
    spec = get_spec(args.dataset)

    try:
        files = locate_files(spec, args.data_dir, download=not args.no_download, verbose=True)
    except DataNotFound as error:
        print(f"{spec.title}: full data set not found.\n{error}")
        try:
            arrays, path = load_sample(spec)
        except DatasetError as sample_error:
            print(f"no sample to fall back to: {sample_error}")
            return 1
        print(f"{spec.title}: load_{spec.name.replace('-', '_')}() would use the bundled sample:")
        print(f"  sample        {path}  source: bundled  OK digest {arrays_digest(arrays)}")
        images, labels = arrays["x_train"], arrays["y_train"]
    except DatasetError as error:
        print(f"error: {error}")
        return 1
    else:
        how = "downloaded to the cache" if files.source == SOURCE_DOWNLOAD else files.source
        print(f"{spec.title}: full data set in {files.directory} ({how})")
        arrays, failures = {}, 0
        for file_spec in spec.files:
            path = files.paths[file_spec.role]
            source = files.urls.get(file_spec.role, files.source)
            try:
                array, md5 = read_checked_file(spec, file_spec, path)
                verify_md5(md5, spec, file_spec, path)
            except DatasetError as error:
                failures += 1
                print(f"  {file_spec.role:<13} {path}  source: {source}  FAILED\n    {error}")
                continue
            arrays[file_spec.role] = array
            print(f"  {file_spec.role:<13} {path}  source: {source}  OK md5 {md5}  "
                  f"{' x '.join(map(str, array.shape))}")
        if failures:
            print(f"{failures} of {len(spec.files)} files failed verification.")
            return 1
        images, labels = arrays["train_images"], arrays["train_labels"]
        counts = " ".join(str(count) for count in np.bincount(labels, minlength=10))
        print(f"  train images per class: {counts}")

    if args.plot is not None:
        plot_path = Path(args.plot or f"{spec.name}-examples.png")
        save_image_grid(images, labels, plot_path, class_names=spec.class_names,
                        title=f"{spec.title}: first training images of each class")
        print(f"saved example images to {plot_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
