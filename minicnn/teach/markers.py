"""Find the ``# BEGIN SOLUTION task=ID`` ... ``# END SOLUTION`` regions in a source file, cut them into stubs,
and patch single lines inside them (the bug pack's chaffs)."""
from __future__ import annotations

import re
from dataclasses import dataclass

BEGIN = re.compile(r"^(?P<indent>\s*)# BEGIN SOLUTION task=(?P<task>\S+)\s*$")
END = re.compile(r"^\s*# END SOLUTION\s*$")


@dataclass
class Region:
    task: str
    indent: str
    begin: int  # index of the BEGIN line
    end: int  # index of the END line


def find_regions(source, path="<source>"):
    """Every region of a file, in order; a clear error for an unclosed or nested marker."""
    regions, open_region = [], None
    for index, line in enumerate(source.split("\n")):
        begin = BEGIN.match(line)
        if begin:
            if open_region:
                raise ValueError(f"{path}:{index + 1}: BEGIN SOLUTION inside task {open_region.task} (line "
                                 f"{open_region.begin + 1}); close it with # END SOLUTION first")
            open_region = Region(begin["task"], begin["indent"], index, -1)
        elif END.match(line):
            if not open_region:
                raise ValueError(f"{path}:{index + 1}: END SOLUTION without a BEGIN SOLUTION")
            open_region.end = index
            regions.append(open_region)
            open_region = None
    if open_region:
        raise ValueError(f"{path}:{open_region.begin + 1}: task {open_region.task} has no # END SOLUTION")
    return regions


def stub_message(task):
    return f"task {task.id}: {task.hint}"


def cut(source, tasks, path="<source>"):
    """The file with every region of ``tasks`` (Task objects, by id) replaced by a stub that raises
    NotImplementedError, the marker lines kept so that the student sees where to write."""
    wanted = {task.id: task for task in tasks}
    lines = source.split("\n")
    for region in reversed(find_regions(source, path)):
        task = wanted.get(region.task)
        if task is None:
            continue
        stub = [lines[region.begin],
                f"{region.indent}# YOUR CODE HERE ({task.title})",
                f"{region.indent}raise NotImplementedError({stub_message(task)!r})",
                lines[region.end]]
        lines[region.begin:region.end + 1] = stub
    return "\n".join(lines)


def patch_line(source, task_id, old, new, path="<source>"):
    """The file with the one line of task ``task_id``'s regions that contains ``old`` changed to contain ``new``
    (the text is replaced inside that line). Raises if ``old`` is not in exactly one line of the regions (a task
    may have several regions in its file, e.g. a function and the layer method that calls it)."""
    lines = source.split("\n")
    regions = [region for region in find_regions(source, path) if region.task == task_id]
    if not regions:
        raise ValueError(f"{path}: no region for task {task_id}")
    body = [index for region in regions for index in range(region.begin + 1, region.end)]
    hits = [index for index in body if lines[index].strip() == old.strip()]  # a whole line first
    hits = hits or [index for index in body if old in lines[index]]
    if len(hits) != 1:
        raise ValueError(f"{path}: {old!r} is in {len(hits)} lines of task {task_id}'s region, expected exactly 1")
    lines[hits[0]] = lines[hits[0]].replace(old, new)
    return "\n".join(lines)
