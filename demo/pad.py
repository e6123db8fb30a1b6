"""The digit pad: draw a digit in your browser and watch every layer of the CNN answer.

    python demo/pad.py [--port 8000] [--model seed] [--no-browser]

The same as ``minicnn pad`` (minicnn/commands/pad.py, minicnn/pad/).
"""
from __future__ import annotations

import argparse
import sys

from minicnn.commands import pad


def main(argv=None):
    parser = argparse.ArgumentParser(description=pad.HELP)
    pad.add_arguments(parser)
    return pad.run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
