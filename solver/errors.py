"""Errors that are the user's to fix: reported as one line per problem, never as a
traceback."""

import errno
from collections.abc import Sequence

# Why a write failed, by errno: the disk's fault, not the program's.
DISK_ERRORS = {errno.ENOSPC: "no space left on device (the disk is full)",
               errno.EDQUOT: "disk quota exceeded",
               errno.EIO: "input/output error (the disk failed)",
               errno.EROFS: "read-only file system"}


def one_line(message: str) -> str:
    """The message as one printable line: control characters, line and paragraph
    separators (a key or value as the user wrote it may hold any) as escapes."""
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii")
                   for c in message)


class UserError(Exception):
    """A problem with the user's input: the CLI prints its message and exits non-zero."""


class CaseError(UserError):
    """A case file that does not validate: names the file, the key path and what was expected.

    `key` and `expected` are the first problem; `more` the others as (key, expected), each
    a line of the message of its own; `omitted` counts problems not listed.
    """

    def __init__(self, file, key: str, expected: str,
                 more: Sequence[tuple[str, str]] = (), omitted: int = 0):
        self.file, self.key, self.expected = str(file), key, expected
        self.problems = [(key, expected), *more]
        # each problem one printable line: a key or value as the user wrote it may hold any
        # line separator
        lines = [one_line(f"{self.file}: {where}: {what}") for where, what in self.problems]
        if omitted:
            lines.append(one_line(f"{self.file}: and {omitted} more problem"
                                  f"{'s' * (omitted > 1)}"))
        super().__init__("\n".join(lines))


class GeometryError(UserError):
    """A geometry that cannot be built or meshed, with the parameters that caused it."""


class SolverError(UserError):
    """A solve that failed (a diverged iteration): reported in one line like input errors."""


class OutputError(UserError):
    """A result file that could not be written (a full disk, a failed one): the run stops
    with exit status 1 (a failed run, not a wrong input) and leaves no result
    (solver/io/output.py ResultsDirectory). `path`: the file; `reason`: why, in words."""

    status = 1

    def __init__(self, path, reason: str, consequence: str = ""):
        self.path, self.reason = path, reason
        super().__init__(f"{path}: {reason}" + (f": {consequence}" if consequence else ""))


def write_reason(error: OSError) -> str:
    """Why a write failed, in words."""
    return DISK_ERRORS.get(error.errno) or error.strerror or str(error)


def error_lines(error: Exception) -> str:
    """The message of a UserError as the command line prints it: each problem on its own
    line (the message's lines, those of the user's text in it escaped), each starting with
    'sinter: error: '."""
    return "\n".join(f"sinter: error: {one_line(line)}" for line in str(error).split("\n"))
