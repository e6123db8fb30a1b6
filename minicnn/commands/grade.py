"""``minicnn grade SUBMISSION... [--json results.json] [--csv grades.csv]``: the hidden checks, per task."""
from __future__ import annotations

HELP = "grade submissions (folders holding minicnn/) with the hidden checks; Gradescope JSON and a class CSV"


def add_arguments(parser):
    parser.add_argument("submissions", nargs="+", metavar="SUBMISSION", help="folders, each holding a minicnn/")
    parser.add_argument("--tasks", nargs="+", metavar="TASK", help="task ids to grade (default: all)")
    parser.add_argument("--json", metavar="FILE", help="Gradescope's results.json (one file per submission)")
    parser.add_argument("--csv", metavar="FILE", help="one row per submission, a column per task")
    parser.add_argument("--time-limit", type=float, default=30.0, metavar="SECONDS", help="per task (default 30)")
    parser.add_argument("--jobs", type=int, default=2, help="tasks graded at once (default 2)")
    parser.add_argument("--quiet", action="store_true", help="only the score line per submission")


def run(arguments):
    from minicnn.teach import grading
    from minicnn.teach.tasks import select

    try:
        tasks = select(arguments.tasks)
    except ValueError as error:
        print(f"minicnn grade: {error}")
        return 2
    results = []
    for submission in arguments.submissions:
        try:
            result = grading.grade_submission(submission, tasks, arguments.time_limit, arguments.jobs)
        except FileNotFoundError as error:
            print(f"minicnn grade: {error}")
            return 2
        results.append(result)
        print("\n".join(result.report().splitlines()[:2 if result.warning else 1]) if arguments.quiet
              else result.report())
    if arguments.json:
        for path in grading.write_json(results, arguments.json):
            print(f"wrote {path}")
    if arguments.csv:
        grading.write_csv(results, arguments.csv)
        print(f"wrote {arguments.csv}")
    return 0
