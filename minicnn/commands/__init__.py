"""The subcommands of the ``minicnn`` command line, one module each.

Each module has ``HELP`` (one line for ``minicnn --help``), ``add_arguments(parser)`` and ``run(arguments) ->
exit status``. ``COMMANDS`` lists them in the order ``minicnn --help`` shows them; the modules are imported only
when their command runs, so ``minicnn --help`` stays fast.
"""
COMMANDS = {  # name: module under minicnn.commands
    "train": "train",
    "info": "info",
    "predict": "predict",
    "pad": "pad",
    "report": "report",
    "assign": "assign",
    "grade": "grade",
    "bugs": "bugs",
    "grid": "grid",
}
