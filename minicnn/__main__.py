"""``python -m minicnn``: the same as the ``minicnn`` command."""
import sys

from minicnn.cli import main

sys.exit(main())
