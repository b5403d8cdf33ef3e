"""Errors that are the user's to fix: reported as one line, never as a traceback."""


def one_line(message: str) -> str:
    """The message as one printable line: control characters, line and paragraph
    separators (a key or value as the user wrote it may hold any) as escapes."""
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii")
                   for c in message)


class UserError(Exception):
    """A problem with the user's input: the CLI prints its message and exits non-zero."""


class CaseError(UserError):
    """A case file that does not validate: names the file, the key path and what was expected."""

    def __init__(self, file, key: str, expected: str):
        self.file, self.key, self.expected = str(file), key, expected
        super().__init__(f"{self.file}: {key}: {expected}")


class GeometryError(UserError):
    """A geometry that cannot be built or meshed, with the parameters that caused it."""


class SolverError(UserError):
    """A solve that failed (a diverged iteration): reported in one line like input errors."""
