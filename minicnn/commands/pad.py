"""``minicnn pad``: draw a digit in the browser and watch every layer of the CNN answer (a local web server)."""
from __future__ import annotations

HELP = "draw a digit in your browser and see the prediction and every layer's feature maps (a local web page)"


def add_arguments(parser):
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to listen on (default: 127.0.0.1, this computer only; 0.0.0.0 opens it to "
                             "your network, which http.server is not hardened for)")
    parser.add_argument("--port", type=int, default=8000, help="port (default: 8000; 0 picks a free one)")
    parser.add_argument("--model", default=None,
                        help="the model to start with: a model file, or the name of a model train.py saved in the "
                             "models folder (default, seed, lenet5, mlp); the page lists the folder's others")
    parser.add_argument("--no-browser", action="store_true", help="do not open a browser window")
    parser.add_argument("--verbose", action="store_true", help="log every request on stderr")


def run(arguments):
    from minicnn.commands.predict import resolve_model
    from minicnn.pad.server import serve

    try:
        return serve(arguments.host, arguments.port, model=resolve_model(arguments.model),
                     open_browser=not arguments.no_browser, quiet=not arguments.verbose)
    except OSError as error:  # the port is taken, or the address is not this machine's
        import sys
        print(f"error: cannot listen on {arguments.host}:{arguments.port} ({error}): try another --port",
              file=sys.stderr)
        return 2
