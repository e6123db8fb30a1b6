"""``minicnn bugs check`` / ``minicnn bugs run --tests PATH`` / ``minicnn bugs list``: the bug pack (chaffs)."""
from __future__ import annotations

HELP = "the bug pack: single-bug versions of the solution ('chaffs') against the hidden checks or your tests"


def add_arguments(parser):
    parser.add_argument("action", choices=("check", "run", "list"),
                        help="check: the hidden checks catch every chaff and pass the solution; run: grade a test "
                             "suite (--tests) by the chaffs it catches; list: the chaffs")
    parser.add_argument("--tests", metavar="PATH", help="for run: a test file or folder (run with pytest)")
    parser.add_argument("--tasks", nargs="+", metavar="TASK", help="only the chaffs of these tasks")
    parser.add_argument("--time-limit", type=float, default=None, metavar="SECONDS",
                        help="per run (default: 30 for check, 120 for run)")
    parser.add_argument("--jobs", type=int, default=2, help="runs at once (default 2)")


def run(arguments):
    from minicnn.teach import bugpack
    from minicnn.teach.chaffs import CHAFFS
    from minicnn.teach.tasks import select

    try:
        wanted = {task.id for task in select(arguments.tasks)}
    except ValueError as error:
        print(f"minicnn bugs: {error}")
        return 2
    chaffs = [chaff for chaff in CHAFFS if chaff.task in wanted]
    if arguments.action == "list":
        for chaff in chaffs:
            print(f"{chaff.id:<28} {chaff.task:<30} {chaff.description}")
        print(f"{len(chaffs)} chaffs")
        return 0
    if arguments.action == "check":
        caught, total, solution_ok = bugpack.check(chaffs, arguments.time_limit or 30.0, arguments.jobs)
        return 0 if caught == total and solution_ok else 1
    if not arguments.tests:
        print("minicnn bugs run: give the tests to grade with --tests PATH")
        return 2
    caught, total, passes = bugpack.run(arguments.tests, chaffs, arguments.time_limit or 120.0, arguments.jobs)
    return 0 if passes else 1
