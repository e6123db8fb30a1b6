"""The instructor kit: exercises cut from the real code, an autograder and a bug pack.

tasks.py lists the exercises (the ``# BEGIN SOLUTION task=...`` regions); markers.py cuts and patches them;
checks.py holds the hidden checks; runner.py runs a submission's code in a subprocess; grading.py puts them
together; chaffs.py is the bug pack; assign.py writes the student and autograder folders.
"""
