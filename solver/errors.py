"""Errors that are the user's to fix: reported as one line per problem, never as a
traceback."""

from collections.abc import Sequence


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
        lines = [f"{self.file}: {where}: {what}" for where, what in self.problems]
        if omitted:
            lines.append(f"{self.file}: and {omitted} more problem{'s' * (omitted > 1)}")
        super().__init__("\n".join(lines))


class GeometryError(UserError):
    """A geometry that cannot be built or meshed, with the parameters that caused it."""


class SolverError(UserError):
    """A solve that failed (a diverged iteration): reported in one line like input errors."""


def error_lines(error: Exception) -> str:
    """The message of a UserError as the command line prints it: each problem on its own
    line, each line starting with 'sinter: error: '."""
    return "\n".join(f"sinter: error: {line}" for line in str(error).splitlines())
