"""``python -m minicnn``: the same as the ``minicnn`` command."""
import sys

from minicnn.cli import main

if __name__ == "__main__":  # (not in a Dask worker process, which re-imports this module)
    sys.exit(main())
