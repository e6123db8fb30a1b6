"""Build the bundled MNIST sample from the full files: `python -m mnist_loader.build_sample --data-dir DIR`.

The selection is deterministic (see mnist_loader.sample), so rebuilding gives the same arrays.
`--check` rebuilds in memory and compares with the bundled sample instead of writing.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from .catalog import get_spec
from .datasets import locate_files, read_verified_files
from .errors import DatasetError
from .sample import SAMPLE_DIGESTS, SAMPLE_KEYS, arrays_digest, build_sample_arrays, read_npz, sample_path, write_npz


def build_sample(name: str = "mnist", data_dir: str | Path | None = None) -> dict[str, np.ndarray]:
    """The sample's arrays, built from the full, checksum-verified data set.

    `data_dir` is found like `load_dataset`'s (the files, or a directory holding `<name>/`); if None, the
    usual sources ($MINICNN_DATA, the cache) are used, without downloading.
    """
    spec = get_spec(name)
    files = locate_files(spec, data_dir, download=False, verbose=False)
    arrays = read_verified_files(spec, files.paths)
    return build_sample_arrays(
        arrays["train_images"], arrays["train_labels"], arrays["test_images"], arrays["test_labels"]
    )


def differences(built: dict[str, np.ndarray], bundled: dict[str, np.ndarray]) -> list[str]:
    """Names of the arrays that differ (in dtype, shape or contents) between two samples."""
    return [
        key for key in SAMPLE_KEYS
        if key not in bundled or built[key].dtype != bundled[key].dtype or not np.array_equal(built[key], bundled[key])
    ]


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(prog="python -m mnist_loader.build_sample", description=__doc__.split("\n")[0])
    parser.add_argument("--dataset", default="mnist", help="data set to sample (default: mnist)")
    parser.add_argument("--data-dir", help="directory with the full files, or holding <dataset>/ "
                                           "(default: $MINICNN_DATA, then the cache)")
    parser.add_argument("--output", type=Path, help="where to write the .npz (default: the bundled sample's path)")
    parser.add_argument("--check", action="store_true", help="compare with the bundled sample instead of writing")
    args = parser.parse_args(argv)

    spec = get_spec(args.dataset)
    output = args.output or sample_path(spec)
    if output is None:
        parser.error(f"{spec.title} has no bundled sample; pass --output to write one elsewhere")
    try:
        arrays = build_sample(spec.name, args.data_dir)
    except DatasetError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    digest = arrays_digest(arrays)
    expected = SAMPLE_DIGESTS.get(spec.name)

    if args.check:
        differing = differences(arrays, read_npz(output))
        if differing:
            print(f"{output}: differs from a fresh build in {', '.join(differing)}", file=sys.stderr)
            return 1
        print(f"{output}: identical to a fresh build (digest {digest})")
        return 0

    write_npz(output, arrays)
    print(f"wrote {output}: {output.stat().st_size:,} bytes, "
          f"{len(arrays['x_train']):,} train / {len(arrays['x_test']):,} test images, digest {digest}")
    if digest != expected:
        print(f"note: SAMPLE_DIGESTS[{spec.name!r}] in mnist_loader/sample.py is {expected}; set it to {digest} "
              f"if this change is intended", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
