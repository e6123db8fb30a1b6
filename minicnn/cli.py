"""The ``minicnn`` command line: ``minicnn SUBCOMMAND [options]`` (``minicnn --help`` lists them).

Installed as a console script by ``pip install -e .``; ``python -m minicnn`` does the same. Each subcommand lives
in its own module under minicnn/commands/ (see its __init__.py).
"""
from __future__ import annotations

import argparse
import importlib
import sys

from minicnn.commands import COMMANDS


def build_parser():
    parser = argparse.ArgumentParser(
        prog="minicnn", description="minicnn: a convolutional neural network engine written by hand with NumPy and "
        "Numba. Run `minicnn SUBCOMMAND --help` for a subcommand's options.")
    subcommands = parser.add_subparsers(dest="command", metavar="SUBCOMMAND")
    for name, module_name in COMMANDS.items():
        module = importlib.import_module(f"minicnn.commands.{module_name}")
        epilog = getattr(module, "EPILOG", None)
        subparser = subcommands.add_parser(name, help=module.HELP, description=module.HELP, epilog=epilog,
                                           formatter_class=argparse.RawDescriptionHelpFormatter if epilog else
                                           argparse.HelpFormatter)
        module.add_arguments(subparser)
        subparser.set_defaults(run=module.run, parser=subparser)
    return parser


def main(argv=None):
    parser = build_parser()
    arguments = parser.parse_args(argv)
    if not getattr(arguments, "command", None):
        parser.print_help()
        return 2
    return arguments.run(arguments) or 0


if __name__ == "__main__":
    sys.exit(main())
