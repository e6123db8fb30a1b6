"""``minicnn assign --out DIR [--tasks ...]``: the student copy (stubs, public tests) and the autograder folder."""
from __future__ import annotations

HELP = "write an assignment: DIR/student (solution regions cut to stubs) and DIR/autograder (after checking them)"


def add_arguments(parser):
    parser.add_argument("--out", metavar="DIR", help="folder to write student/ and autograder/ into (required "
                                                     "unless --list)")
    parser.add_argument("--tasks", nargs="+", metavar="TASK", help="task ids (default: all; `--list` shows them)")
    parser.add_argument("--list", action="store_true", help="list the tasks and exit")
    parser.add_argument("--time-limit", type=float, default=30.0, metavar="SECONDS",
                        help="per task, when checking the solution (default 30)")


def list_tasks():
    from minicnn.teach.tasks import TASKS
    for task in TASKS:
        print(f"{task.id:<30} {task.difficulty:<7} {task.points} pts  {task.file:<38} {task.title}")


def run(arguments):
    from minicnn.teach.assign import SolutionFailsError, assign
    from minicnn.teach.tasks import select

    if arguments.list:
        list_tasks()
        return 0
    if not arguments.out:
        print("minicnn assign: give the folder to write into with --out DIR (or --list to see the tasks)")
        return 2
    try:
        assign(select(arguments.tasks), arguments.out, time_limit=arguments.time_limit)
    except (ValueError, FileExistsError, SolutionFailsError) as error:
        print(f"minicnn assign: {error}")
        return 2
    return 0
